import type { Migration } from '../migrations.js';

// The event graph of each room and the state after each of its events (federation: spec
// server-server API §PDUs, §Checks performed on receipt of a PDU, §Room State Resolution).
//
// `events` stays the timeline (what clients may see, each at a stream position). `event_graph`
// holds every PDU we know of in a room whatever became of it: `status` is `timeline` (in
// `events`), `outlier` (known without the state at it: auth events, state fetched at a gap),
// `rejected` (failed the auth rules: never to clients, never a prev event), `soft_failed` (passed
// the state at it but not the current state: kept for state resolution, not in the timeline, not
// an extremity) or `backfilled` (history fetched later; in `events` at a negative position).
// `json` is only stored for events that are not in `events` (no second copy of a timeline event).
// `state_group` is the state AFTER the event (for a rejected event, the state before it: a
// rejected state event changes nothing); NULL for outliers and for events written before this
// migration, whose rooms have a linear history, so `room_state` at their position is their state.
//
// `event_edges` (prev_events) and `event_auth_edges` (auth_events, as listed; a v12 room's
// implicit create event is not a row) are indexed both ways: parents for get_missing_events,
// backfill and auth chains, children for extremities.
//
// State groups are stored as skip-deltas: a group numbered `seq` along its chain of parents is a
// delta against its ancestor `seq` with the lowest set bit cleared (`seq` 0 is a full snapshot).
// A group is materialised from at most log2(seq) + 1 rows sets, and storage grows with the number
// of state changes (times a logarithm), never with events × state size — a message shares its
// parent's group, and no snapshot of a big room's state is repeated every N changes.
// `state_group_entries.event_id` NULL records a key removed by state resolution.
//
// Existing rooms: every event gets its graph row, edges and auth edges from its JSON, each room's
// latest event becomes its forward extremity (local history is a line), and no state groups are
// made: readers fall back to `room_state.stateAt(position)` for events without one.
const TABLES = `
CREATE TABLE event_graph (
  event_id TEXT NOT NULL PRIMARY KEY,
  room_id TEXT NOT NULL,
  depth BIGINT NOT NULL,
  status TEXT NOT NULL,
  rejected_reason TEXT,
  state_group BIGINT,
  json TEXT
);

CREATE TABLE event_edges (
  event_id TEXT NOT NULL,
  prev_event_id TEXT NOT NULL,
  PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth_edges (
  event_id TEXT NOT NULL,
  auth_event_id TEXT NOT NULL,
  PRIMARY KEY (event_id, auth_event_id)
);
CREATE INDEX event_auth_edges_auth ON event_auth_edges (auth_event_id);

CREATE TABLE room_forward_extremities (
  room_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (room_id, event_id)
);

CREATE TABLE room_backward_extremities (
  room_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (room_id, event_id)
);

CREATE TABLE state_groups (
  id BIGINT NOT NULL PRIMARY KEY,
  room_id TEXT NOT NULL,
  prev_group BIGINT,
  seq BIGINT NOT NULL,
  delta_depth INTEGER NOT NULL
);
CREATE INDEX state_groups_room ON state_groups (room_id);

CREATE TABLE state_group_entries (
  state_group BIGINT NOT NULL,
  type TEXT NOT NULL,
  state_key TEXT NOT NULL,
  event_id TEXT,
  PRIMARY KEY (state_group, type, state_key)
);

INSERT INTO event_graph (event_id, room_id, depth, status, rejected_reason, state_group, json)
SELECT event_id, room_id, depth, 'timeline', NULL, NULL, NULL FROM events;

INSERT INTO room_forward_extremities (room_id, event_id)
SELECT e.room_id, e.event_id FROM events e
WHERE e.stream_ordering = (SELECT MAX(x.stream_ordering) FROM events x WHERE x.room_id = e.room_id)
`;

// prev_events and auth_events are id lists, or [id, hashes] pairs in rooms v1 and v2.
const SQLITE_EDGES = `
INSERT INTO event_edges (event_id, prev_event_id)
SELECT e.event_id, CASE WHEN r.type = 'array' THEN json_extract(r.value, '$[0]') ELSE r.value END
FROM events e, json_each(e.json, '$.prev_events') r
WHERE r.type IN ('text', 'array')
ON CONFLICT DO NOTHING;

INSERT INTO event_auth_edges (event_id, auth_event_id)
SELECT e.event_id, CASE WHEN r.type = 'array' THEN json_extract(r.value, '$[0]') ELSE r.value END
FROM events e, json_each(e.json, '$.auth_events') r
WHERE r.type IN ('text', 'array')
ON CONFLICT DO NOTHING
`;

// Event content may hold the escape \u0000, which PostgreSQL's JSON functions refuse to read
// ("cannot be converted to text"): it is replaced by \u0020 first (only the id lists are read,
// and the text stays valid JSON whether the escape was real or followed an escaped backslash).
const POSTGRES_EDGES = `
CREATE SEQUENCE state_group_id_seq MINVALUE 1 START WITH 1 INCREMENT BY 100;

INSERT INTO event_edges (event_id, prev_event_id)
SELECT e.event_id, CASE WHEN json_typeof(r) = 'array' THEN r ->> 0 ELSE r #>> '{}' END
FROM events e, json_array_elements(replace(e.json, '\\u0000', '\\u0020')::json -> 'prev_events') r
WHERE json_typeof(r) IN ('string', 'array')
ON CONFLICT DO NOTHING;

INSERT INTO event_auth_edges (event_id, auth_event_id)
SELECT e.event_id, CASE WHEN json_typeof(r) = 'array' THEN r ->> 0 ELSE r #>> '{}' END
FROM events e, json_array_elements(replace(e.json, '\\u0000', '\\u0020')::json -> 'auth_events') r
WHERE json_typeof(r) IN ('string', 'array')
ON CONFLICT DO NOTHING
`;

export const eventGraph: Migration = {
  version: 51,
  name: 'event graph and state groups',
  sqlite: `${TABLES};\n${SQLITE_EDGES}`,
  postgres: `${TABLES};\n${POSTGRES_EDGES}`,
};
