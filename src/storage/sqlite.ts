// The embedded default: SQLite through better-sqlite3, in WAL mode with synchronous=NORMAL (a
// commit is durable against a process crash; a power cut may lose the last moments, as with
// Synapse's defaults).
//
// better-sqlite3 is synchronous, and a transaction here may await between statements, so writes
// go through one connection guarded by a queue, while plain reads use a second connection that
// only ever sees committed data.

import BetterSqlite3 from 'better-sqlite3';
import type { Database, Queryable, Row, SqlValue } from './database.js';

type Connection = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

function openConnection(file: string, readonly: boolean): Connection {
  const db = new BetterSqlite3(file, { readonly: false, fileMustExist: readonly });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
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

export class SqliteDatabase implements Database {
  readonly dialect = 'sqlite' as const;
  private readonly writer: Connection;
  private readonly reader: Connection;
  private readonly writes: Queryable;
  private readonly reads: Queryable;
  /** Serialises transactions and writes on the write connection. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {
    this.writer = openConnection(file, false);
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
    return this.serialised(() => this.writes.run(sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.serialised(async () => {
      this.writer.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.writes);
        this.writer.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
        throw err;
      }
    });
  }

  exec(sql: string): Promise<void> {
    return this.serialised(async () => {
      this.writer.exec(sql);
    });
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    if (this.reader !== this.writer) this.reader.close();
    this.writer.close();
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn, fn);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
