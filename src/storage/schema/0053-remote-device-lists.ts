import type { Migration } from './migration.js';

// Other servers' users' device lists, cached for the users we share a room with (spec:
// server-server API §Device Management; client-server API §Tracking the device list for a user).
//
// `remote_device_lists`: one row per remote user whose devices are cached. `stream_id` is the
// user's server's device-list stream id the cache reflects (the last `m.device_list_update` applied,
// or the `stream_id` of the last `/user/devices` resync); NULL when the cache is stale and must be
// fetched again before use. `events_position`: our events stream position when the cache was
// filled; a user whose every current join began after it left all shared rooms in between (their
// server stopped telling us of changes), so the cache is not used.
//
// `remote_device_keys`: the cached devices, one row each (`key_json` NULL: a device without keys),
// as their server signed them. Their master and self-signing keys live in `e2e_cross_signing_keys`
// beside our users' (so our users can sign them), and their changes on `device_lists_stream`.
export const remoteDeviceLists: Migration = {
  version: 53,
  name: 'remote device lists',
  sql: `
CREATE TABLE remote_device_lists (
  user_id TEXT NOT NULL PRIMARY KEY,
  stream_id BIGINT,
  events_position BIGINT NOT NULL,
  updated_ts BIGINT NOT NULL
);

CREATE TABLE remote_device_keys (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  key_json TEXT,
  display_name TEXT,
  PRIMARY KEY (user_id, device_id)
)`,
};
