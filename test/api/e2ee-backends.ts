// The databases the end-to-end encryption API tests run on: each test file runs its suite on
// SQLite and on PostgreSQL (the stores' SQL differs in places: upserts, counts, booleans).

import { testPostgres } from '../harness/postgres.js';
import { startTestHomeserver, type TestHomeserver } from '../helpers/homeserver.js';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/** A test homeserver on the backend; `name` names its PostgreSQL database. */
export async function startOn(backend: Backend, name: string): Promise<TestHomeserver> {
  if (backend === 'sqlite') return startTestHomeserver();
  const pg = await testPostgres();
  return startTestHomeserver({ database: { name: 'psycopg2', args: { host: pg.socketDir, user: pg.user, database: await pg.createDatabase(name) } } });
}
