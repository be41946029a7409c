import type { Migration } from './migration.js';

// The client-server core: accounts, rooms and events, room state, and the per-user streams.
//
// Conventions: times are BIGINT milliseconds; flags are INTEGER 0/1; JSON is stored as TEXT;
// `stream_id` / `stream_ordering` columns are positions in a stream (see src/streams/).
//
// Room state is stored as intervals: each state event is valid from the events-stream position
// of the event that set it (`from_stream`) until the position of the event that replaced it
// (`to_stream`, NULL while current). One row per state change, so storage grows with the number
// of state changes, never with events × state size. This relies on each room's events being
// written by one writer, in order (a room's local history is a line). Rooms with forks (federation)
// will need per-event state groups for the fork points; see docs/architecture.md.
export const clientServer: Migration = {
  version: 2,
  name: 'client-server core',
  sql: `
CREATE TABLE users (
  user_id TEXT NOT NULL PRIMARY KEY,
  password_hash TEXT,
  is_admin INTEGER NOT NULL DEFAULT 0,
  is_guest INTEGER NOT NULL DEFAULT 0,
  deactivated INTEGER NOT NULL DEFAULT 0,
  user_type TEXT,
  created_ts BIGINT NOT NULL
);

CREATE TABLE profiles (
  user_id TEXT NOT NULL PRIMARY KEY,
  displayname TEXT,
  avatar_url TEXT
);

CREATE TABLE devices (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  display_name TEXT,
  last_seen_ts BIGINT,
  last_seen_ip TEXT,
  last_seen_user_agent TEXT,
  created_ts BIGINT NOT NULL,
  PRIMARY KEY (user_id, device_id)
);

-- Access tokens are stored as SHA-256 hashes: a leaked database does not leak sessions.
CREATE TABLE access_tokens (
  token_hash TEXT NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  created_ts BIGINT NOT NULL
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

-- User-interactive auth sessions live in the database so a follow-up request may reach any worker.
CREATE TABLE ui_auth_sessions (
  session_id TEXT NOT NULL PRIMARY KEY,
  method TEXT NOT NULL,
  uri TEXT NOT NULL,
  body_json TEXT NOT NULL,
  completed_json TEXT NOT NULL,
  user_id TEXT,
  created_ts BIGINT NOT NULL
);

CREATE TABLE rooms (
  room_id TEXT NOT NULL PRIMARY KEY,
  room_version TEXT NOT NULL,
  creator TEXT NOT NULL,
  is_public INTEGER NOT NULL DEFAULT 0,
  created_ts BIGINT NOT NULL
);

CREATE TABLE events (
  stream_ordering BIGINT NOT NULL PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  room_id TEXT NOT NULL,
  type TEXT NOT NULL,
  state_key TEXT,
  sender TEXT NOT NULL,
  depth BIGINT NOT NULL,
  origin_server_ts BIGINT NOT NULL,
  -- the PDU exactly as hashed and signed
  json TEXT NOT NULL,
  -- the event this one relates to (m.relates_to.event_id) and how, for threads, edits, reactions
  relates_to TEXT,
  relation_type TEXT,
  thread_id TEXT,
  instance_name TEXT NOT NULL
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_relates_to ON events (relates_to);

-- Redactions that apply: the redacted event is served with redacted content and
-- unsigned.redacted_because. The original JSON is kept (as Synapse does for a while).
CREATE TABLE redactions (
  redacts TEXT NOT NULL,
  event_id TEXT NOT NULL,
  stream_ordering BIGINT NOT NULL,
  PRIMARY KEY (redacts, event_id)
);

-- Idempotent sends: (room, user, device, txn id) → event id, kept across restarts and workers.
CREATE TABLE event_txn_ids (
  room_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  txn_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  created_ts BIGINT NOT NULL,
  PRIMARY KEY (room_id, user_id, device_id, txn_id)
);
CREATE INDEX event_txn_ids_event ON event_txn_ids (event_id);

CREATE TABLE room_state (
  room_id TEXT NOT NULL,
  type TEXT NOT NULL,
  state_key TEXT NOT NULL,
  event_id TEXT NOT NULL,
  membership TEXT,
  from_stream BIGINT NOT NULL,
  to_stream BIGINT,
  PRIMARY KEY (room_id, type, state_key, from_stream)
);
CREATE INDEX room_state_current ON room_state (room_id) WHERE to_stream IS NULL;
CREATE INDEX room_state_member_current ON room_state (state_key, membership) WHERE type = 'm.room.member' AND to_stream IS NULL;
CREATE INDEX room_state_member_history ON room_state (state_key, from_stream) WHERE type = 'm.room.member';
CREATE INDEX room_state_room_from ON room_state (room_id, from_stream);
CREATE INDEX room_state_room_to ON room_state (room_id, to_stream);

-- Rooms a user has forgotten (they no longer appear anywhere for that user).
CREATE TABLE room_forgotten (
  user_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  PRIMARY KEY (user_id, room_id)
);

CREATE TABLE room_aliases (
  room_alias TEXT NOT NULL PRIMARY KEY,
  room_id TEXT NOT NULL,
  creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE user_filters (
  user_id TEXT NOT NULL,
  filter_id BIGINT NOT NULL,
  filter_json TEXT NOT NULL,
  PRIMARY KEY (user_id, filter_id)
);

-- Per-user and per-room account data ('' room for global), the account_data stream.
CREATE TABLE account_data (
  user_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  type TEXT NOT NULL,
  content TEXT NOT NULL,
  stream_id BIGINT NOT NULL,
  PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_id);

-- The receipts stream: one row per (room, type, user, thread), moved forward by newer receipts.
CREATE TABLE receipts (
  room_id TEXT NOT NULL,
  receipt_type TEXT NOT NULL,
  user_id TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_stream_ordering BIGINT NOT NULL,
  data TEXT NOT NULL,
  stream_id BIGINT NOT NULL,
  PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream_id);
CREATE INDEX receipts_user ON receipts (user_id, room_id);

-- The to_device stream: messages wait here until the device's next sync acknowledges them.
CREATE TABLE to_device_inbox (
  stream_id BIGINT NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  message_json TEXT NOT NULL
);
CREATE INDEX to_device_inbox_device ON to_device_inbox (user_id, device_id, stream_id);

CREATE TABLE to_device_txn_ids (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  txn_id TEXT NOT NULL,
  created_ts BIGINT NOT NULL,
  PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE presence (
  user_id TEXT NOT NULL PRIMARY KEY,
  state TEXT NOT NULL,
  status_msg TEXT,
  last_active_ts BIGINT NOT NULL,
  last_user_sync_ts BIGINT NOT NULL,
  currently_active INTEGER NOT NULL DEFAULT 0,
  stream_id BIGINT NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_id);

-- A user's own push rules and their changes to the server defaults, as one JSON document.
CREATE TABLE push_rules (
  user_id TEXT NOT NULL PRIMARY KEY,
  rules_json TEXT NOT NULL,
  stream_id BIGINT NOT NULL
);
CREATE INDEX push_rules_stream ON push_rules (stream_id);

-- Notifications computed when an event is persisted, for unread counts.
CREATE TABLE event_push_actions (
  room_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  stream_ordering BIGINT NOT NULL,
  event_id TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  notif INTEGER NOT NULL,
  highlight INTEGER NOT NULL,
  PRIMARY KEY (user_id, room_id, stream_ordering)
);

-- The device_lists stream: which users' devices changed (end-to-end encryption builds on it).
CREATE TABLE device_lists_stream (
  stream_id BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  PRIMARY KEY (stream_id, user_id, device_id)
);
CREATE INDEX device_lists_stream_user ON device_lists_stream (user_id, stream_id);
`,
};
