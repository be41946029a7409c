// One suite on both database backends: SQLite (a file in a temporary directory) and PostgreSQL
// (the test run's server, test/harness/postgres.ts, with a new database for each homeserver or
// handle). Every suite that touches storage runs through `forEachBackend`, so the stores' SQL is
// exercised in both dialects:
//
//   forEachBackend('room aliases', (backend) => {
//     let hs: TestHomeserver;
//     before(async () => (hs = await backend.startHomeserver()));
//     after(() => hs.stop());
//     test(...);
//   });
//
// The suites are named `<name> (sqlite)` and `<name> (postgres)`.

import { join } from 'node:path';
import { after, describe } from 'node:test';
import type { Database } from '../../src/storage/database.js';
import { PostgresDatabase } from '../../src/storage/postgres.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { testPostgres } from '../harness/postgres.js';
import { startTestHomeserver, type TestHomeserver, type TestHomeserverOptions } from './homeserver.js';
import { tempDir } from './tmp.js';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface Backend {
  readonly name: BackendName;
  /** The homeserver config's `database` section for a new, empty database of this backend. */
  databaseConfig(): Promise<Record<string, unknown>>;
  /** A test homeserver (see `startTestHomeserver`) on a new database of this backend unless `options.database` names one. */
  startHomeserver(options?: TestHomeserverOptions): Promise<TestHomeserver>;
  /** A handle on a new, empty database (not migrated), closed when the suite ends. */
  openDatabase(): Promise<Database>;
  /**
   * Two handles on one new database, as main and a worker started together would have. SQLite is
   * single-process (worker mode requires PostgreSQL), so there both are the same handle.
   */
  openTwice(): Promise<[Database, Database]>;
}

/** Declares the suite `name` once per backend; `suite` declares its hooks and tests. */
export function forEachBackend(name: string, suite: (backend: Backend) => void): void {
  for (const backendName of BACKENDS) {
    describe(`${name} (${backendName})`, () => {
      const opened: Database[] = [];
      after(() => Promise.all(opened.splice(0).map((db) => db.close())));
      suite(backendNamed(backendName, opened));
    });
  }
}

function backendNamed(name: BackendName, opened: Database[]): Backend {
  const postgres = async () => {
    const server = await testPostgres();
    return { host: server.socketDir, user: server.user, database: await server.createDatabase('suite') };
  };
  const keep = <T extends Database>(db: T): T => {
    opened.push(db);
    return db;
  };
  const backend: Backend = {
    name,
    async databaseConfig() {
      if (name === 'sqlite') return { name: 'sqlite3', args: { database: join(tempDir('myelin-sqlite-'), 'homeserver.db') } };
      return { name: 'psycopg2', args: await postgres() };
    },
    async startHomeserver(options = {}) {
      // SQLite: the homeserver's own directory, as `startTestHomeserver` does by default.
      if (options.database !== undefined || name === 'sqlite') return startTestHomeserver(options);
      return startTestHomeserver({ ...options, database: await backend.databaseConfig() });
    },
    async openDatabase() {
      if (name === 'sqlite') return keep(new SqliteDatabase(join(tempDir('myelin-sqlite-'), 'test.db')));
      return keep(new PostgresDatabase(await postgres()));
    },
    async openTwice() {
      if (name === 'sqlite') {
        const db = await backend.openDatabase();
        return [db, db];
      }
      const args = await postgres();
      return [keep(new PostgresDatabase(args)), keep(new PostgresDatabase(args))];
    },
  };
  return backend;
}
