// The embedded default: SQLite through better-sqlite3, in WAL mode with synchronous=NORMAL (a
// commit is durable against a process crash; a power cut may lose the last moments, as with
// Synapse's defaults).
//
// better-sqlite3 is synchronous, and a transaction here may await between statements, so writes
// go through one connection guarded by a queue, while plain reads use a second connection that
// only ever sees committed data.
//
// Passing faults — the database locked by another process for longer than `busy_timeout`
// (SQLITE_BUSY), a full disk (SQLITE_FULL), an I/O error — fail the operations they hit with a
// `DatabaseUnavailableError` (a retriable 503 for clients) and a log line, never the process, and
// never a write reported done that was not committed.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from '../util/log.js';
import type { Database, Queryable, Row, SqlValue } from './database.js';
import { asUnavailable, databaseFaultOf, DatabaseHealth } from './faults.js';

type Connection = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

// Loaded on first use: a process on PostgreSQL (every worker) never maps the native module.
let driver: typeof BetterSqlite3 | undefined;

export interface SqliteOptions {
  /** Where to say that the database fails (locked, disk full) and when it serves again. */
  log?: Logger;
  /** How long a statement waits for a lock another process holds (default 10 s). */
  busyTimeoutMs?: number;
}

function openConnection(file: string, readonly: boolean, busyTimeoutMs: number): Connection {
  driver ??= createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  const db = new driver(file, { readonly: false, fileMustExist: readonly });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  // Checkpoints (copying the WAL into the database, with an fsync) run on a background thread
  // (see WalCheckpointer): done by the writer they took most of a commit's time and stalled every
  // request for tens of milliseconds. This automatic checkpoint is only the backstop should that
  // thread stop. The WAL file is cut back to 64 MB after each checkpoint.
  db.pragma('wal_autocheckpoint = 20000');
  db.pragma('journal_size_limit = 67108864');
  db.pragma('foreign_keys = ON');
  return db;
}

/** Prepared statements are cached by their SQL text: preparing costs more than running. */
class StatementCache {
  private readonly statements = new Map<string, Statement>();
  constructor(private readonly db: Connection) {}

  get(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/** Statements on one connection; a passing fault leaves them as a `DatabaseUnavailableError`. */
function queryable(cache: StatementCache, fault: (err: unknown) => unknown): Queryable {
  return {
    async all<T = Row>(sql: string, params: readonly SqlValue[] = []) {
      try {
        return cache.get(sql).all(...params) as T[];
      } catch (err) {
        throw fault(err);
      }
    },
    async get<T = Row>(sql: string, params: readonly SqlValue[] = []) {
      try {
        return cache.get(sql).get(...params) as T | undefined;
      } catch (err) {
        throw fault(err);
      }
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      try {
        const statement = cache.get(sql);
        // A statement that returns rows (e.g. with RETURNING) cannot be `run` by better-sqlite3.
        if (statement.reader) return { changes: statement.all(...params).length };
        return { changes: statement.run(...params).changes };
      } catch (err) {
        throw fault(err);
      }
    },
  };
}

/**
 * The background checkpointer: a worker thread with its own connection that checkpoints the WAL
 * several times a second (PASSIVE: it never blocks the writer or readers), and now and then,
 * when nothing is writing, truncates the WAL file. Plain JavaScript, so it runs the same from
 * compiled code and from tests.
 */
const CHECKPOINTER_SOURCE = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 0');
let passes = 0;
setInterval(() => {
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    // Every few seconds, once everything is copied, try to reset the file (skipped when busy).
    if (++passes % 20 === 0 && result && result.log > 0 && result.log === result.checkpointed) db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // Busy or locked: try again on the next tick.
  }
}, 250);
`;

function startCheckpointer(file: string): Worker {
  const worker = new Worker(CHECKPOINTER_SOURCE, {
    eval: true,
    workerData: { file, module: createRequire(import.meta.url).resolve('better-sqlite3') },
    // It only runs a pragma every 250 ms: a small heap keeps the thread's memory down.
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, codeRangeSizeMb: 2 },
  });
  // Neither keeps the process alive nor may crash it: the writer's automatic checkpoint remains.
  worker.unref();
  worker.on('error', () => undefined);
  return worker;
}

interface WriteJob {
  /** `exec` jobs (schema changes) run alone; the others may share a commit. */
  readonly alone: boolean;
  readonly run: (tx: Queryable) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** The most transactions one commit carries (bounds the latency of the first of them). */
const MAX_GROUP = 64;

export class SqliteDatabase implements Database {
  readonly dialect = 'sqlite' as const;
  readonly orderedWrites = true;
  private readonly writer: Connection;
  private readonly reader: Connection;
  private readonly writes: Queryable;
  private readonly reads: Queryable;
  /** Writes waiting for the write connection. */
  private readonly jobs: WriteJob[] = [];
  /** Set while `drain` runs; cleared in the same tick it finds the queue empty. */
  private draining: Promise<void> | undefined;

  private readonly checkpointer: Worker | undefined;
  /** Whether writes (commits) fail on a passing fault; logged when that starts and ends. */
  private readonly writeHealth: DatabaseHealth;
  private readonly readHealth: DatabaseHealth;

  constructor(
    readonly file: string,
    options: SqliteOptions = {},
  ) {
    const busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
    this.writeHealth = new DatabaseHealth(options.log);
    this.readHealth = new DatabaseHealth(options.log);
    this.writer = openConnection(file, false, busyTimeoutMs);
    this.checkpointer = file === ':memory:' ? undefined : startCheckpointer(file);
    // An in-memory database is private to its connection, so reads must share the writer.
    this.reader = file === ':memory:' ? this.writer : openConnection(file, true, busyTimeoutMs);
    this.writes = queryable(new StatementCache(this.writer), (err) => this.fault(err, this.writeHealth));
    this.reads =
      this.reader === this.writer ? this.writes : queryable(new StatementCache(this.reader), (err) => this.fault(err, this.readHealth));
  }

  async all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    const rows = await this.reads.all<T>(sql, params);
    this.readHealth.succeeded();
    return rows;
  }

  async get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    const row = await this.reads.get<T>(sql, params);
    this.readHealth.succeeded();
    return row;
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.enqueue(false, (tx) => tx.run(sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.enqueue(false, fn);
  }

  exec(sql: string): Promise<void> {
    return this.enqueue(true, async () => {
      try {
        this.writer.exec(sql);
      } catch (err) {
        throw this.fault(err, this.writeHealth);
      }
    });
  }

  async close(): Promise<void> {
    await this.draining;
    await this.checkpointer?.terminate();
    if (this.reader !== this.writer) this.reader.close();
    this.writer.close();
  }

  private enqueue<T>(alone: boolean, run: (tx: Queryable) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.jobs.push({ alone, run, resolve: resolve as (value: unknown) => void, reject });
      this.draining ??= this.drain();
    });
  }

  /** A passing fault becomes a `DatabaseUnavailableError`, said once in the log; others stay. */
  private fault(err: unknown, health: DatabaseHealth): unknown {
    const kind = databaseFaultOf(err);
    if (kind === undefined) return err;
    health.failed(kind, err);
    return asUnavailable(err);
  }

  /**
   * Runs queued writes. Transactions that are waiting together share one commit (group commit):
   * each runs inside its own savepoint, so one that fails is rolled back alone, and none is
   * reported done before the commit that makes it durable. Under load this turns hundreds of
   * commits (and WAL checkpoints) per second into a few.
   *
   * Nothing here may throw: a failed BEGIN (the database locked by another process), COMMIT (a full
   * disk) or rollback fails the transactions of that group, and the queue goes on with the next.
   */
  private async drain(): Promise<void> {
    try {
      while (this.jobs.length > 0) {
        if (this.jobs[0]!.alone) {
          const job = this.jobs.shift()!;
          try {
            job.resolve(await job.run(this.writes));
            this.writeHealth.succeeded();
          } catch (err) {
            job.reject(err);
          }
          continue;
        }
        // One turn of the event loop lets concurrent writers (other rooms' events, other users'
        // receipts) join this commit; it costs a single write a few microseconds.
        await new Promise((resolve) => setImmediate(resolve));
        await this.commitGroup();
      }
    } finally {
      // No await between the empty check above and this line: a job queued from now on starts a new drain.
      this.draining = undefined;
    }
  }

  /** Runs the next group of transactions in one commit; settles each of them. */
  private async commitGroup(): Promise<void> {
    const done: Array<{ job: WriteJob; ok: boolean; value: unknown }> = [];
    let current: WriteJob | undefined;
    try {
      this.writer.exec('BEGIN IMMEDIATE');
      while (done.length < MAX_GROUP && this.jobs.length > 0 && !this.jobs[0]!.alone) {
        const job = (current = this.jobs.shift()!);
        this.writer.exec('SAVEPOINT job');
        try {
          const value = await job.run(this.writes);
          this.writer.exec('RELEASE job');
          done.push({ job, ok: true, value });
        } catch (err) {
          // After some errors (a full disk, an I/O error) SQLite rolls the whole transaction back
          // by itself: the group's earlier work is gone too, so all of it fails.
          if (!this.writer.inTransaction) throw err;
          this.writer.exec('ROLLBACK TO job');
          this.writer.exec('RELEASE job');
          done.push({ job, ok: false, value: err });
        }
        current = undefined;
      }
      this.writer.exec('COMMIT');
    } catch (err) {
      try {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      } catch {
        // The connection rolls back by itself when it cannot (SQLite's rule for a failed ROLLBACK).
      }
      const failure = this.fault(err, this.writeHealth);
      current?.reject(failure);
      for (const { job, ok, value } of done) job.reject(ok ? failure : value);
      // BEGIN itself failed (the database is locked elsewhere): the group that would have run fails.
      if (!current && done.length === 0) {
        for (let n = 0; n < MAX_GROUP && this.jobs.length > 0 && !this.jobs[0]!.alone; n++) this.jobs.shift()!.reject(failure);
      }
      return;
    }
    // A group where a transaction failed on a passing fault (one insert too many for a full disk)
    // does not yet say the fault has passed.
    if (done.every(({ ok, value }) => ok || databaseFaultOf(value) === undefined)) this.writeHealth.succeeded();
    for (const { job, ok, value } of done) (ok ? job.resolve : job.reject)(value);
  }
}
