// Starts a throwaway Redis server for tests, configured as the worker guide configures it: no TCP
// (`port 0`), a UNIX socket with `unixsocketperm 770`, nothing persisted. It can be stopped and
// started again on the same socket (outage tests), and is stopped when this process exits.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** The server's UNIX socket. */
  socketPath: string;
  /** The `redis` config block that reaches it. */
  config: { enabled: true; path: string; host: string; port: number };
  /** Starts the server again after `stop` (same socket path). */
  start(): Promise<void>;
  /** Stops the server; the socket path stays reserved for `start`. */
  stop(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

/** Sends PING over the socket; true when the server answers PONG. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (data) => {
      answer += data.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('connect', () => socket.write('PING\r\n'));
  });
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-redis-'));
  const socketPath = join(dir, 'redis.sock');
  const configFile = join(dir, 'redis.conf');
  const logFile = join(dir, 'redis.log');
  writeFileSync(
    configFile,
    [
      'port 0',
      `unixsocket ${socketPath}`,
      'unixsocketperm 770',
      'save ""',
      'appendonly no',
      `dir ${dir}`,
      'daemonize no',
      `logfile ${logFile}`,
      '',
    ].join('\n'),
  );
  const output = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  let child: ChildProcess | undefined;
  const stopNow = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', stopNow);

  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    // Output goes to a file so that neither the server nor its pipes keep the test process alive.
    const outFd = openSync(join(dir, 'redis.out'), 'a');
    const started = spawn('redis-server', [configFile], { stdio: ['ignore', outFd, outFd], cwd: dir });
    closeSync(outFd);
    started.unref();
    child = started;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`redis-server exited during start-up:\n${output()}`);
      if (await ping(socketPath)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s:\n${output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.ref(); // keep this process alive until the server has shut down
    running.kill('SIGTERM');
    await exited;
  };

  await start();
  return {
    socketPath,
    config: { enabled: true, path: socketPath, host: 'localhost', port: 6379 },
    start,
    stop,
    async destroy() {
      process.off('exit', stopNow);
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
