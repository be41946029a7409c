// Versioned schema migrations. The main process applies the ones a database lacks at start-up,
// in order, each in its own transaction; workers only check that the schema is current. The
// applied versions are recorded in `schema_version`, so a process that finds a schema newer than
// it knows refuses to run rather than corrupt it.

import type { Database, Queryable } from './database.js';
import { SCHEMA } from './schema/index.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Statements separated by `;`, shared by both dialects... */
  readonly sql?: string;
  /** ...or, where the dialects differ, one text per dialect. */
  readonly sqlite?: string;
  readonly postgres?: string;
}

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
      await tx.run('INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)', [
        next.version,
        next.name,
        now(),
      ]);
      to = next.version;
      return true;
    });
    if (!applied) return { from, to };
  }
}

/** For workers: the schema must be exactly the one this code knows (main migrates it). */
export async function checkSchemaVersion(db: Database, known = LATEST_SCHEMA_VERSION): Promise<void> {
  const exists = await db
    .get('SELECT 1 AS one FROM schema_version LIMIT 1')
    .then(() => true)
    .catch(() => false);
  const version = exists ? await currentVersion(db) : 0;
  if (version > known) throw tooNew(version, known);
  if (version < known) {
    throw new SchemaVersionError(
      `the database schema is at version ${version}, older than this version of Myelin needs (${known}); start the main process first, it upgrades the schema`,
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
