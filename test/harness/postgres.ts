// Starts a throwaway PostgreSQL server for tests and benchmarks: a fresh cluster in a temporary
// directory, listening only on a UNIX socket there, stopped when this process exits.
//
// initdb refuses to run as root, so as root the cluster is created and run as the `postgres`
// user. When MYELIN_TEST_PG_SOCKET_DIR is set (the test runner starts one server for the whole
// run), that server is used instead and only a new database is created.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  socketDir: string;
  user: string;
  /** Creates an empty database and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  /** Stops the server for good and removes its files. */
  stop(): Promise<void>;
  /**
   * Outage tests, on a server of their own (`startPostgres`): `shutdown` stops the server as
   * `pg_ctl stop -m fast` does (SIGINT: sessions are terminated with 57P01, the socket goes away),
   * keeping its data; `start` runs it again on the same data directory and socket; `restart` is
   * both, as `pg_ctl restart -m fast`. The shared server of a test run cannot be stopped.
   */
  shutdown(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Whether the server is running (between `start` and `shutdown`). */
  readonly running: boolean;
}

function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], 'bin');
  }
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
}

const isRoot = process.getuid?.() === 0;

/** As root, the server's programs run as the `postgres` user (initdb refuses root). */
function postgresUser(): { uid?: number; gid?: number } {
  if (!isRoot) return {};
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
  };
}

async function waitForServer(socketDir: string, user: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`PostgreSQL exited during start-up:\n${output()}`);
    const client = new pg.Client({ host: socketDir, user, database: 'postgres' });
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not start within 30 s:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface Lifecycle {
  stop(): Promise<void>;
  shutdown(): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
}

function serverFor(socketDir: string, user: string, lifecycle: Lifecycle): PostgresServer {
  let counter = 0;
  return {
    socketDir,
    user,
    get running() {
      return lifecycle.running();
    },
    async createDatabase(prefix = 'test') {
      const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
      const client = new pg.Client({ host: socketDir, user, database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return name;
    },
    stop: () => lifecycle.stop(),
    shutdown: () => lifecycle.shutdown(),
    start: () => lifecycle.start(),
    async restart() {
      await lifecycle.shutdown();
      await lifecycle.start();
    },
  };
}

/**
 * Starts a new cluster. `durable: false` (the default for tests) turns off fsync so tests run
 * fast; benchmarks that measure commits pass `durable: true`. `maxConnections`: the server's
 * `max_connections` (200; the test run's shared server, used by many test files at once, takes more).
 */
export async function startPostgres({ durable = false, maxConnections = 200 } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'myelin-pg-'));
  const dataDir = join(dir, 'data');
  const user = 'postgres';
  const owner = postgresUser();
  if (owner.uid !== undefined) chownSync(dir, owner.uid, owner.gid!);
  execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', user, '--no-sync', '-E', 'UTF8', '--locale=C'], {
    stdio: 'pipe',
    cwd: dir,
    ...owner,
  });
  const settings = [
    'listen_addresses=',
    `unix_socket_directories=${dir}`,
    `max_connections=${maxConnections}`,
    ...(durable ? [] : ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off']),
  ].flatMap((s) => ['-c', s]);
  // The server's output goes to a file so that neither it nor the child keeps this process alive:
  // a test process must be able to exit, and the server is stopped when it does.
  const logFile = join(dir, 'server.log');
  const output = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  let child: ChildProcess | undefined;
  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const stopNow = () => {
    if (isRunning()) child!.kill('SIGINT');
  };
  process.once('exit', stopNow);

  async function start(): Promise<void> {
    if (isRunning()) throw new Error('PostgreSQL is already running');
    const logFd = openSync(logFile, 'a');
    child = spawn(join(bin, 'postgres'), ['-D', dataDir, ...settings], { stdio: ['ignore', logFd, logFd], cwd: dir, ...owner });
    closeSync(logFd);
    child.unref();
    await waitForServer(dir, user, child, output);
  }

  /** SIGINT is PostgreSQL's "fast" shutdown (`pg_ctl stop -m fast`). */
  async function shutdown(): Promise<void> {
    if (!isRunning()) return;
    const running = child!;
    const exited = new Promise((r) => running.once('exit', r));
    running.ref(); // keep this process alive until the server has shut down
    running.kill('SIGINT');
    await exited;
    running.unref();
  }

  await start();
  return serverFor(dir, user, {
    running: isRunning,
    start,
    shutdown,
    async stop() {
      process.off('exit', stopNow);
      await shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

let shared: Promise<PostgresServer> | undefined;

/** The test run's shared server (MYELIN_TEST_PG_SOCKET_DIR), or one started for this process. */
export function testPostgres(): Promise<PostgresServer> {
  shared ??= (async () => {
    const socketDir = process.env.MYELIN_TEST_PG_SOCKET_DIR;
    if (socketDir) {
      const shared = async () => {
        throw new Error('the shared PostgreSQL of the test run cannot be stopped; start one with startPostgres()');
      };
      return serverFor(socketDir, 'postgres', { stop: async () => undefined, shutdown: shared, start: shared, running: () => true });
    }
    return startPostgres();
  })();
  return shared;
}
