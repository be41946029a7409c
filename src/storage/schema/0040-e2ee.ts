import type { Migration } from './migration.js';

// End-to-end encryption: what devices publish so others can encrypt to them, and the user's
// encrypted room-key backups. The server never sees plaintext; it stores, serves and fans out.
//
// Key JSON is stored as the client sent it (canonical JSON): signatures cover it, so it must come
// back byte-for-byte equivalent.
//
// `e2e_one_time_keys.ts_added`: keys are handed out oldest upload first (keys.yaml `/keys/claim`),
// so a client that drops its oldest private keys rarely has one of them claimed.
//
// `e2e_cross_signing_signatures`: signatures uploaded through `/keys/signatures/upload`, kept apart
// from the keys they sign. `target_device_id` is a device id or, for a cross-signing key, its
// public key (the spec makes them share one namespace). Who sees which: a device's signatures by
// its owner's self-signing key are public; a signature on a cross-signing key is shown only to the
// user who made it.
//
// `e2e_user_signature_stream`: the part of the device_lists stream only the signer hears about
// (they signed another user's master key, or replaced their own user-signing key), so their other
// devices fetch the new signatures. Positions are shared with `device_lists_stream` (schema 0002).
export const e2ee: Migration = {
  version: 40,
  name: 'end-to-end encryption',
  sql: `
CREATE TABLE e2e_device_keys (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  key_json TEXT NOT NULL,
  ts_added BIGINT NOT NULL,
  PRIMARY KEY (user_id, device_id)
);

CREATE TABLE e2e_one_time_keys (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  key_id TEXT NOT NULL,
  key_json TEXT NOT NULL,
  ts_added BIGINT NOT NULL,
  PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_order ON e2e_one_time_keys (user_id, device_id, algorithm, ts_added);

CREATE TABLE e2e_fallback_keys (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  key_id TEXT NOT NULL,
  key_json TEXT NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, device_id, algorithm)
);

CREATE TABLE e2e_cross_signing_keys (
  user_id TEXT NOT NULL,
  key_type TEXT NOT NULL,
  public_key TEXT NOT NULL,
  key_json TEXT NOT NULL,
  PRIMARY KEY (user_id, key_type)
);

CREATE TABLE e2e_cross_signing_signatures (
  user_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  target_user_id TEXT NOT NULL,
  target_device_id TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY (target_user_id, target_device_id, user_id, key_id)
);

CREATE TABLE e2e_user_signature_stream (
  stream_id BIGINT NOT NULL,
  from_user_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  PRIMARY KEY (stream_id, from_user_id, user_id)
);
CREATE INDEX e2e_user_signature_stream_from ON e2e_user_signature_stream (from_user_id, stream_id);

CREATE TABLE e2e_room_keys_versions (
  user_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  algorithm TEXT NOT NULL,
  auth_data TEXT NOT NULL,
  etag BIGINT NOT NULL DEFAULT 0,
  deleted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
  user_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  room_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  first_message_index BIGINT NOT NULL,
  forwarded_count BIGINT NOT NULL,
  is_verified INTEGER NOT NULL,
  session_data TEXT NOT NULL,
  PRIMARY KEY (user_id, version, room_id, session_id)
);
`,
};
