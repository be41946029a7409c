import type { Migration } from './migration.js';

// The federation sender (spec: server-server API §Transactions, §Send-to-device messaging): what it
// must remember so that no event or durable EDU is lost across a restart, a crash or an outage.
//
// `federation_destinations`: one row per server we have sent to (or must send to).
// - `last_acked_events`: every event of the events stream at or below this position that the
//   destination should get has been acknowledged by it (answered 200). Catch-up resends our events
//   of shared rooms above it. It only moves forward, and only after a 200 (or when nothing between
//   was for the destination).
// - `receipts_position`, `device_lists_position`: the same for the durable EDUs read from those
//   streams (`m.receipt`; `m.device_list_update` and `m.signing_key_update`).
// - retry state, as Synapse keeps it (`destinations`): `failure_ts` when the current outage began
//   (NULL while it answers), `retry_last_ts` when we last tried, `retry_interval_ms` how long to
//   wait after that (0: not backing off).
//
// `federation_sender_positions`: how far each sender instance has read the events stream and
// handed events to destinations. A restarted sender reads on from there, so events written while
// it was down (or just before it crashed) reach their destinations.
//
// `federation_to_device_outbox`: `m.direct_to_device` EDUs for other servers' users, written by the
// to-device writer with the message's to_device stream position, one row per destination and send
// (`message_id` chosen then, so a resend is deduplicated by the receiver), deleted once the
// destination acknowledged the transaction that carried it.
export const federationSender: Migration = {
  version: 52,
  name: 'federation sender',
  sql: `
CREATE TABLE federation_destinations (
  destination TEXT NOT NULL PRIMARY KEY,
  last_acked_events BIGINT NOT NULL,
  receipts_position BIGINT NOT NULL,
  device_lists_position BIGINT NOT NULL,
  failure_ts BIGINT,
  retry_last_ts BIGINT NOT NULL DEFAULT 0,
  retry_interval_ms BIGINT NOT NULL DEFAULT 0,
  last_success_ts BIGINT
);

CREATE TABLE federation_sender_positions (
  instance_name TEXT NOT NULL,
  stream_name TEXT NOT NULL,
  position BIGINT NOT NULL,
  PRIMARY KEY (instance_name, stream_name)
);

CREATE TABLE federation_to_device_outbox (
  stream_id BIGINT NOT NULL PRIMARY KEY,
  destination TEXT NOT NULL,
  message_id TEXT NOT NULL,
  edu_json TEXT NOT NULL,
  created_ts BIGINT NOT NULL
);
CREATE INDEX federation_to_device_outbox_destination ON federation_to_device_outbox (destination, stream_id)`,
};
