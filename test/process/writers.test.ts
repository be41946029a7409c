// The writer registry against the rules it must agree with: every stream has one entry, and the
// streams the config lets have several writers (`stream_writers`) are exactly those whose calls
// name a shard.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MULTI_WRITER_STREAMS } from '../../src/config/roles.js';
import { WRITERS } from '../../src/process/writers.js';
import { STREAM_NAMES } from '../../src/streams/streams.js';

test('every stream has a writer entry, and only the streams that may have several writers name a shard', () => {
  assert.deepEqual(Object.keys(WRITERS).sort(), [...STREAM_NAMES].sort());
  const sharded = STREAM_NAMES.filter((stream) => WRITERS[stream].shardKey !== undefined);
  assert.deepEqual(sharded.sort(), [...MULTI_WRITER_STREAMS].sort());
  for (const stream of sharded) {
    assert.deepEqual(
      Object.keys(WRITERS[stream].shardKey!).sort(),
      [...WRITERS[stream].methods].sort(),
      `every ${stream} method names its shard`,
    );
  }
});

test('a room’s events and receipts are sharded by the room, a user’s device lists by the user', () => {
  const room = '!room:example.org';
  const user = '@alice:example.org';
  assert.equal(WRITERS.events.shardKey!.sendEvent(room, { type: 'm.room.message', sender: user, content: {} }), room);
  const receipt = { roomId: room, userId: user, receiptType: 'm.read', threadId: null, eventId: '$e', eventStreamOrdering: 1, ts: 0 };
  assert.equal(WRITERS.receipts.shardKey!.putReceipt(receipt), room);
  const deviceLists = WRITERS.device_lists.shardKey!;
  assert.equal(deviceLists.uploadKeys(user, 'DEVICE', { one_time_keys: [], fallback_keys: [] }), user);
  assert.equal(deviceLists.uploadSigningKeys(user, {}), user);
  assert.equal(deviceLists.uploadSignatures(user, {}), user);
  assert.equal(deviceLists.devicesDeleted(user, ['DEVICE']), user);
});
