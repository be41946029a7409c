import type { Migration } from './migration.js';

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
// backfill and auth chains, children for extremities. Every graph row has an integer `nid` in the
// order rows are written, and edges are keyed by the nids of both ends (the target's when we held
// it as the edge was written; else by its event id, a partial index): every send writes rows
// that land at the end of their B-trees instead of at random places in indexes of 44-character
// hashes, which costs a write a page each (measured: three random-key indexes more halved the
// send throughput on SQLite). Auth edges are kept for state events and for events outside the
// timeline: only state events are ever auth events, so a walk up an auth chain needs a message's
// edges only for the first step, which its JSON gives.
//
// State groups are stored as skip-deltas: a group numbered `seq` along its chain of parents is a
// delta against its ancestor `seq` with the lowest set bit cleared (`seq` 0 is a full snapshot).
// A group is materialised from at most log2(seq) + 1 deltas, and storage grows with the number
// of state changes (times a logarithm), never with events × state size — a message shares its
// parent's group, and no snapshot of a big room's state is repeated every N changes.
// `state_group_entries.event_id` NULL records a key removed by state resolution.
//
// Existing rooms: every event gets its graph row, edges and (state events) auth edges from its
// JSON, each room's latest event becomes its forward extremity (local history is a line), and no
// state groups are made: readers fall back to `room_state.stateAt(position)` for events without.
function tables(dialect: 'sqlite' | 'postgres'): string {
  // SQLite: `INTEGER PRIMARY KEY` is the rowid itself; the other tables keep their rows in their
  // key's B-tree (WITHOUT ROWID) instead of in a rowid table beside it.
  const nid = dialect === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGSERIAL PRIMARY KEY';
  const keyed = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  const edges = (table: string, column: string) => `
CREATE TABLE ${table} (
  event_nid BIGINT NOT NULL,
  ${column}_event_id TEXT NOT NULL,
  ${column}_nid BIGINT,
  PRIMARY KEY (event_nid, ${column}_event_id)
)${keyed};
CREATE INDEX ${table}_${column} ON ${table} (${column}_nid) WHERE ${column}_nid IS NOT NULL;
CREATE INDEX ${table}_${column}_unknown ON ${table} (${column}_event_id) WHERE ${column}_nid IS NULL`;
  return `
CREATE TABLE event_graph (
  nid ${nid},
  event_id TEXT NOT NULL UNIQUE,
  room_id TEXT NOT NULL,
  depth BIGINT NOT NULL,
  status TEXT NOT NULL,
  rejected_reason TEXT,
  state_group BIGINT,
  json TEXT
);
${edges('event_edges', 'prev')};
${edges('event_auth_edges', 'auth')};

CREATE TABLE room_forward_extremities (
  room_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (room_id, event_id)
)${keyed};

CREATE TABLE room_backward_extremities (
  room_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (room_id, event_id)
)${keyed};

CREATE TABLE state_groups (
  id BIGINT NOT NULL PRIMARY KEY,
  room_id TEXT NOT NULL,
  prev_group BIGINT,
  seq BIGINT NOT NULL,
  delta_depth INTEGER NOT NULL
)${keyed};
CREATE INDEX state_groups_room ON state_groups (room_id);

CREATE TABLE state_group_entries (
  state_group BIGINT NOT NULL,
  type TEXT NOT NULL,
  state_key TEXT NOT NULL,
  event_id TEXT,
  PRIMARY KEY (state_group, type, state_key)
)${keyed};

INSERT INTO event_graph (event_id, room_id, depth, status, rejected_reason, state_group, json)
SELECT event_id, room_id, depth, 'timeline', NULL, NULL, NULL FROM events ORDER BY stream_ordering;

INSERT INTO room_forward_extremities (room_id, event_id)
SELECT e.room_id, e.event_id FROM events e
WHERE e.stream_ordering = (SELECT MAX(x.stream_ordering) FROM events x WHERE x.room_id = e.room_id)
`;
}

/** The edges of existing events, from their JSON: prev_events and (state events) auth_events. */
function existingEdges(dialect: 'sqlite' | 'postgres'): string {
  // prev_events and auth_events are id lists, or [id, hashes] pairs in rooms v1 and v2.
  const refs = (field: string) =>
    dialect === 'sqlite'
      ? `SELECT e.event_id, e.state_key, CASE WHEN r.type = 'array' THEN json_extract(r.value, '$[0]') ELSE r.value END AS target
         FROM events e, json_each(e.json, '$.${field}') r WHERE r.type IN ('text', 'array')`
      : // Event content may hold the escape \u0000, which PostgreSQL's JSON functions refuse to
        // read ("cannot be converted to text"): it is replaced by \u0020 first (only the id lists
        // are read, and the text stays valid JSON whether the escape was real or followed an
        // escaped backslash).
        `SELECT e.event_id, e.state_key, CASE WHEN json_typeof(r) = 'array' THEN r ->> 0 ELSE r #>> '{}' END AS target
         FROM events e, json_array_elements(replace(e.json, '\\u0000', '\\u0020')::json -> '${field}') r
         WHERE json_typeof(r) IN ('string', 'array')`;
  const insert = (table: string, column: string, field: string, onlyState: boolean) => `
INSERT INTO ${table} (event_nid, ${column}_event_id, ${column}_nid)
SELECT g.nid, x.target, t.nid FROM (${refs(field)}) x
JOIN event_graph g ON g.event_id = x.event_id
LEFT JOIN event_graph t ON t.event_id = x.target
WHERE x.target IS NOT NULL${onlyState ? ' AND x.state_key IS NOT NULL' : ''}
ON CONFLICT DO NOTHING`;
  const sequence = dialect === 'postgres' ? 'CREATE SEQUENCE state_group_id_seq MINVALUE 1 START WITH 1 INCREMENT BY 100;\n' : '';
  return `${sequence}${insert('event_edges', 'prev', 'prev_events', false)};\n${insert('event_auth_edges', 'auth', 'auth_events', true)}`;
}

export const eventGraph: Migration = {
  version: 51,
  name: 'event graph and state groups',
  sqlite: `${tables('sqlite')};\n${existingEdges('sqlite')}`,
  postgres: `${tables('postgres')};\n${existingEdges('postgres')}`,
};
