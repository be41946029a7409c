import type { Migration } from './migration.js';

// Per-user and ephemeral streams: what schema 0002 did not already hold.
//
// `stream_positions`: the highest position a writer has handed out, for streams whose rows are
// deleted once consumed (to-device messages are deleted when the device acknowledges them). Without
// it a restart would start such a stream again below positions clients already hold in their sync
// tokens, and they would skip the new rows.
//
// `event_push_own_marks`: a user's latest own event per room and thread. Sending an event marks the
// notifications before it as read (push.md §Marking notifications as read), so unread counts start
// after the later of this and the user's read receipts.
//
// `event_push_room_actions`: the notification most local members get from an event, stored once
// per event instead of once per member. It applies to every local member joined when the event
// was sent, except the sender and the members with their own row in `event_push_actions` (whose
// rules gave something else: a highlight, or no notification). In a big room a message thus costs
// one row plus a row per exception, not a row per member: writing a row per member scatters a page
// write per member over the table's B-tree and made a 1,000-member room's messages cost tens of
// milliseconds each.
export const ephemeral: Migration = {
  version: 20,
  name: 'ephemeral and per-user streams',
  sql: `
CREATE TABLE stream_positions (
  stream_name TEXT NOT NULL,
  instance_name TEXT NOT NULL,
  position BIGINT NOT NULL,
  PRIMARY KEY (stream_name, instance_name)
);

CREATE TABLE event_push_own_marks (
  user_id TEXT NOT NULL,
  room_id TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  stream_ordering BIGINT NOT NULL,
  PRIMARY KEY (user_id, room_id, thread_id)
);

CREATE TABLE event_push_room_actions (
  room_id TEXT NOT NULL,
  stream_ordering BIGINT NOT NULL,
  event_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  highlight INTEGER NOT NULL,
  PRIMARY KEY (room_id, stream_ordering)
);
`,
};
