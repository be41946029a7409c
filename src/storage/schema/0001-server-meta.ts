import type { Migration } from './migration.js';

// Facts about the deployment that must not change under a database, such as the server name
// it was created for (user ids and room aliases embed it).
export const serverMeta: Migration = {
  version: 1,
  name: 'server meta',
  sql: `
CREATE TABLE server_meta (
  meta_key TEXT NOT NULL PRIMARY KEY,
  meta_value TEXT NOT NULL
);
`,
};
