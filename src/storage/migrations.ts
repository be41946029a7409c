// Versioned schema migrations. The main process applies the ones a database lacks at start-up,
// in order, each in its own transaction; workers only check that the schema is current. The
// applied versions are recorded in `schema_version`, so a process that finds a schema newer than
// it knows refuses to run rather than corrupt it. Before either, a process waits for a database
// that does not answer yet (`waitForDatabase`): "unreachable" is not "empty".

import type { Logger } from '../util/log.js';
import type { Database, Queryable } from './database.js';
import { isTransientDatabaseError, messageOf } from './faults.js';
import { SCHEMA } from './schema/index.js';
import type { Migration } from './schema/migration.js';

export class SchemaVersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaVersionError';
  }
}

export const LATEST_SCHEMA_VERSION = SCHEMA.reduce((max, m) => Math.max(max, m.version), 0);

/** An arbitrary constant that names our migration lock among PostgreSQL advisory locks. */
const MIGRATION_LOCK_ID = 7161061;

const CREATE_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  applied_ts BIGINT NOT NULL
)`;

async function currentVersion(db: Queryable): Promise<number> {
  const row = await db.get<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_version');
  return row?.version ?? 0;
}

function tooNew(found: number, known: number): SchemaVersionError {
  return new SchemaVersionError(
    `the database schema is at version ${found}, newer than this version of Myelin knows (${known}); ` +
      'run a Myelin release at least as new as the one that upgraded the database',
  );
}

/** Applies pending migrations and returns the resulting schema version. */
export async function migrate(
  db: Database,
  migrations: readonly Migration[] = SCHEMA,
  now: () => number = Date.now,
): Promise<{ from: number; to: number }> {
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  let from = -1;
  let to = 0;
  for (;;) {
    // One migration per transaction; on PostgreSQL an advisory lock keeps two processes started
    // together from applying the same migration twice.
    const applied = await db.transaction(async (tx) => {
      if (db.dialect === 'postgres') await tx.get(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
      await tx.run(CREATE_VERSION_TABLE);
      const version = await currentVersion(tx);
      if (from < 0) from = version;
      to = version;
      if (version > known) throw tooNew(version, known);
      const next = migrations.filter((m) => m.version > version).sort((a, b) => a.version - b.version)[0];
      if (!next) return false;
      const sql = next.sql ?? (db.dialect === 'sqlite' ? next.sqlite : next.postgres);
      if (sql === undefined) throw new Error(`migration ${next.version} has no SQL for ${db.dialect}`);
      for (const statement of splitStatements(sql)) await tx.run(statement);
      await tx.run('INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)', [next.version, next.name, now()]);
      to = next.version;
      return true;
    });
    if (!applied) return { from, to };
  }
}

/** Whether `err` says a table does not exist (PostgreSQL's 42P01 undefined_table, SQLite's words). */
function isMissingTable(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return code === '42P01' || (typeof message === 'string' && message.startsWith('no such table'));
}

/**
 * For workers: the schema must be exactly the one this code knows (main migrates it). Only a
 * missing `schema_version` table means version 0; a database that cannot be read is an error of
 * its own (a `DatabaseUnavailableError` when it is down), never "version 0".
 */
export async function checkSchemaVersion(db: Database, known = LATEST_SCHEMA_VERSION): Promise<void> {
  let version: number;
  try {
    version = await currentVersion(db);
  } catch (err) {
    if (!isMissingTable(err)) throw err;
    version = 0;
  }
  if (version > known) throw tooNew(version, known);
  if (version < known) {
    throw new SchemaVersionError(
      `the database schema is at version ${version}, older than this version of Myelin needs (${known}); ` +
        'start the main process first, it upgrades the schema',
    );
  }
}

/** Splits on `;` at line ends; our migration SQL keeps one statement per `;`-terminated block. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && !/^(--[^\n]*\n?)+$/.test(s));
}

export interface WaitForDatabaseOptions {
  log?: Logger;
  /** Stops the wait (the process was asked to stop): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each failed attempt (the supervisor hears that this process is waiting, not stuck). */
  onWaiting?: () => void;
  /** The longest pause between attempts (default 5 s). */
  maxDelayMs?: number;
}

/** Whether the database answers at all: the lightest statement there is (throws if it does not). */
export async function pingDatabase(db: Database): Promise<void> {
  await db.get('SELECT 1 AS one');
}

/**
 * Resolves once the database answers. While it is unreachable (down, starting, refusing
 * connections) this waits and tries again, saying so in the log — at once, then every 30 s — and
 * when it answers. A permanent error (wrong password, no such database) is thrown at once.
 */
export async function waitForDatabase(db: Database, options: WaitForDatabaseOptions = {}): Promise<void> {
  const { log, signal } = options;
  const maxDelayMs = options.maxDelayMs ?? 5_000;
  let delay = Math.min(250, maxDelayMs);
  let waitingSince: number | undefined;
  let saidAt = 0;
  for (;;) {
    signal?.throwIfAborted();
    try {
      await pingDatabase(db);
      if (waitingSince !== undefined) log?.info({ waitedMs: Date.now() - waitingSince }, 'the database answers; starting');
      return;
    } catch (err) {
      if (!isTransientDatabaseError(err)) throw err;
      const now = Date.now();
      if (waitingSince === undefined) {
        waitingSince = now;
        saidAt = now;
        log?.warn({ err: messageOf(err) }, 'database unreachable; waiting for it before starting');
      } else if (now - saidAt >= 30_000) {
        saidAt = now;
        log?.warn({ err: messageOf(err), waitedMs: now - waitingSince }, 'still waiting for the database');
      }
      options.onWaiting?.();
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done);
    });
    delay = Math.min(delay * 2, maxDelayMs);
  }
}
