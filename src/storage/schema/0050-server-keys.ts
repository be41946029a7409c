import type { Migration } from './migration.js';

// Other servers' signing keys (spec: server-server API §Retrieving server keys), fetched directly
// or through a notary, kept so that signatures can be checked without asking again.
//
// `server_verify_keys`: one row per key. `valid_until_ts` is until when signatures by the key
// count: for a current key the lesser of the published `valid_until_ts` and 7 days after it was
// fetched; for an old key (`old_verify_keys`) its `expired_ts`, which is also kept as published in
// `expired_ts` (NULL for current keys). `from_server` is who told us: the server itself or a notary.
//
// `server_keys_json`: the latest `/_matrix/key/v2/server` answer of each server as the server
// signed it (other signatures dropped), so this server can act as a notary for it.
export const serverKeys: Migration = {
  version: 50,
  name: 'server keys',
  sql: `
CREATE TABLE server_verify_keys (
  server_name TEXT NOT NULL,
  key_id TEXT NOT NULL,
  public_key TEXT NOT NULL,
  valid_until_ts BIGINT NOT NULL,
  expired_ts BIGINT,
  fetched_ts BIGINT NOT NULL,
  from_server TEXT NOT NULL,
  PRIMARY KEY (server_name, key_id)
);

CREATE TABLE server_keys_json (
  server_name TEXT NOT NULL PRIMARY KEY,
  key_json TEXT NOT NULL,
  valid_until_ts BIGINT NOT NULL,
  fetched_ts BIGINT NOT NULL,
  from_server TEXT NOT NULL
)`,
};
