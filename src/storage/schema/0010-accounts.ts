import type { Migration } from './migration.js';

// Accounts: what user-interactive auth keeps on the server side, and the lookups registration and
// login make on every request.
export const accounts: Migration = {
  version: 10,
  name: 'accounts',
  sql: `
-- Data the server attaches to a user-interactive auth session and the client never sees or sets:
-- the hash of a password given in an earlier request, the user a registration created.
ALTER TABLE ui_auth_sessions ADD COLUMN server_data_json TEXT NOT NULL DEFAULT '{}';
CREATE INDEX ui_auth_sessions_created ON ui_auth_sessions (created_ts);

-- User ids are unique regardless of case (registration and login compare them lower-cased).
CREATE INDEX users_lower_user_id ON users (LOWER(user_id));
`,
};
