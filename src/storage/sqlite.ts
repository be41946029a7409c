// The embedded default: SQLite through better-sqlite3, in WAL mode with synchronous=NORMAL (a
// commit is durable against a process crash; a power cut may lose the last moments, as with
// Synapse's defaults).
//
// better-sqlite3 is synchronous, and a transaction here may await between statements, so writes
// go through one connection guarded by a queue, while plain reads use a second connection that
// only ever sees committed data.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import type { Database, Queryable, Row, SqlValue } from './database.js';

type Connection = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

// Loaded on first use: a process on PostgreSQL (every worker) never maps the native module.
let driver: typeof BetterSqlite3 | undefined;

function openConnection(file: string, readonly: boolean): Connection {
  driver ??= createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  const db = new driver(file, { readonly: false, fileMustExist: readonly });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
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

function queryable(cache: StatementCache): Queryable {
  return {
    async all<T = Row>(sql: string, params: readonly SqlValue[] = []) {
      return cache.get(sql).all(...params) as T[];
    },
    async get<T = Row>(sql: string, params: readonly SqlValue[] = []) {
      return cache.get(sql).get(...params) as T | undefined;
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      const statement = cache.get(sql);
      // A statement that returns rows (e.g. with RETURNING) cannot be `run` by better-sqlite3.
      if (statement.reader) return { changes: statement.all(...params).length };
      return { changes: statement.run(...params).changes };
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

  constructor(readonly file: string) {
    this.writer = openConnection(file, false);
    this.checkpointer = file === ':memory:' ? undefined : startCheckpointer(file);
    // An in-memory database is private to its connection, so reads must share the writer.
    this.reader = file === ':memory:' ? this.writer : openConnection(file, true);
    this.writes = queryable(new StatementCache(this.writer));
    this.reads = this.reader === this.writer ? this.writes : queryable(new StatementCache(this.reader));
  }

  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.reads.all<T>(sql, params);
  }

  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.reads.get<T>(sql, params);
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.enqueue(false, (tx) => tx.run(sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.enqueue(false, fn);
  }

  exec(sql: string): Promise<void> {
    return this.enqueue(true, async () => {
      this.writer.exec(sql);
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

  /**
   * Runs queued writes. Transactions that are waiting together share one commit (group commit):
   * each runs inside its own savepoint, so one that fails is rolled back alone, and none is
   * reported done before the commit that makes it durable. Under load this turns hundreds of
   * commits (and WAL checkpoints) per second into a few.
   */
  private async drain(): Promise<void> {
    while (this.jobs.length > 0) {
      if (this.jobs[0]!.alone) {
        const job = this.jobs.shift()!;
        try {
          job.resolve(await job.run(this.writes));
        } catch (err) {
          job.reject(err);
        }
        continue;
      }
      // One turn of the event loop lets concurrent writers (other rooms' events, other users'
      // receipts) join this commit; it costs a single write a few microseconds.
      await new Promise((resolve) => setImmediate(resolve));
      const done: Array<{ job: WriteJob; ok: boolean; value: unknown }> = [];
      this.writer.exec('BEGIN IMMEDIATE');
      try {
        while (done.length < MAX_GROUP && this.jobs.length > 0 && !this.jobs[0]!.alone) {
          const job = this.jobs.shift()!;
          this.writer.exec('SAVEPOINT job');
          try {
            const value = await job.run(this.writes);
            this.writer.exec('RELEASE job');
            done.push({ job, ok: true, value });
          } catch (err) {
            this.writer.exec('ROLLBACK TO job');
            this.writer.exec('RELEASE job');
            done.push({ job, ok: false, value: err });
          }
        }
        this.writer.exec('COMMIT');
      } catch (err) {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
        for (const { job } of done) job.reject(err);
        continue;
      }
      for (const { job, ok, value } of done) (ok ? job.resolve : job.reject)(value);
    }
    // No await between the empty check above and this line: a job queued from now on starts a new drain.
    this.draining = undefined;
  }
}
