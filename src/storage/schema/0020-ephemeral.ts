import type { Migration } from '../migrations.js';

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
`,
};
