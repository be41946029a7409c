// The ephemeral streams' stores on both backends (their SQL is shared), and the stream publisher.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InMemoryBus, type StreamUpdate } from '../../src/streams/bus.js';
import { AccountDataStore } from '../../src/storage/account-data-store.js';
import type { Database } from '../../src/storage/database.js';
import { FiltersStore } from '../../src/storage/filters-store.js';
import { migrate } from '../../src/storage/migrations.js';
import { PresenceStore } from '../../src/storage/presence-store.js';
import { PushActionsStore } from '../../src/storage/push-actions-store.js';
import { PushRulesStore } from '../../src/storage/push-rules-store.js';
import { ReceiptsStore } from '../../src/storage/receipts-store.js';
import { ToDeviceStore } from '../../src/storage/to-device-store.js';
import { StreamIdGenerator } from '../../src/streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../src/streams/stream-writer.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('ephemeral stores', (backend) => {
  let db: Database;
  const setup = async () => {
    if (!db) {
      db = await backend.openDatabase();
      await migrate(db);
    }
    return db;
  };

  test('account data: upsert by (user, room, type) and changes by position', async () => {
    const store = new AccountDataStore(await setup());
    await db.transaction((tx) => store.put(tx, '@a:x', '', 't', '{"v":1}', 1));
    await db.transaction((tx) => store.put(tx, '@a:x', '!r:x', 't', '{"v":2}', 2));
    await db.transaction((tx) => store.put(tx, '@a:x', '', 't', '{"v":3}', 3));
    assert.equal(await store.get('@a:x', '', 't'), '{"v":3}');
    assert.equal(await store.maxStreamId(), 3);
    assert.deepEqual(
      (await store.changedBetween('@a:x', 1, 3)).map((r) => [r.room_id, Number(r.stream_id)]),
      [
        ['!r:x', 2],
        ['', 3],
      ],
    );
  });

  test('receipts: upsert, changes in rooms, read marks', async () => {
    const store = new ReceiptsStore(await setup());
    const row = {
      room_id: '!r:x',
      receipt_type: 'm.read',
      user_id: '@a:x',
      thread_id: '',
      event_id: '$1',
      event_stream_ordering: 10,
      data: '{"ts":1}',
      stream_id: 1,
    };
    await db.transaction((tx) => store.put(tx, row));
    await db.transaction((tx) =>
      store.put(tx, { ...row, receipt_type: 'm.read.private', event_id: '$2', event_stream_ordering: 12, stream_id: 2 }),
    );
    await db.transaction((tx) => store.put(tx, { ...row, event_id: '$3', event_stream_ordering: 11, stream_id: 3 }));
    assert.equal(await store.currentEventOrdering('!r:x', 'm.read', '@a:x', '', db), 11);
    assert.deepEqual(
      (await store.changedBetween(['!r:x', '!other:x'], 1, 3)).map((r) => r.event_id),
      ['$2', '$3'],
    );
    assert.deepEqual(
      (await store.readMarks('@a:x')).map((m) => [m.room_id, m.thread_id, Number(m.stream_ordering)]),
      [['!r:x', '', 12]],
    );
  });

  test('to-device: txn claims, inbox paging, and a high-water mark that survives deletion', async () => {
    const store = new ToDeviceStore(await setup());
    assert.equal(await db.transaction((tx) => store.claimTxn(tx, '@a:x', 'D', 't1', 1)), true);
    assert.equal(await db.transaction((tx) => store.claimTxn(tx, '@a:x', 'D', 't1', 2)), false);
    assert.equal(await store.txnSeen('@a:x', 'D', 't1'), true);
    await db.transaction(async (tx) => {
      for (let i = 1; i <= 3; i++) await store.insert(tx, i, '@b:x', 'E', `{"i":${i}}`);
      await store.recordPosition(tx, 'main', 3);
      await store.recordPosition(tx, 'main', 2);
    });
    assert.deepEqual(
      (await store.pending('@b:x', 'E', 1, 3, 10)).map((r) => Number(r.stream_id)),
      [2, 3],
    );
    await store.deleteUpTo('@b:x', 'E', 3);
    assert.deepEqual(await store.pending('@b:x', 'E', 0, 3, 10), []);
    assert.equal(await store.maxStreamId('main'), 3, 'the stream does not restart below delivered positions');
  });

  test('presence: upsert, touch without a new position, changes and lookups', async () => {
    const store = new PresenceStore(await setup());
    const row = {
      user_id: '@a:x',
      state: 'online',
      status_msg: null,
      last_active_ts: 1,
      last_user_sync_ts: 1,
      currently_active: 1,
      stream_id: 1,
    };
    await db.transaction((tx) => store.put(tx, row));
    await db.transaction((tx) => store.put(tx, { ...row, user_id: '@b:x', state: 'offline', stream_id: 2 }));
    await store.touch('@a:x', 50, 60);
    const a = await store.get('@a:x');
    assert.deepEqual([Number(a?.last_active_ts), Number(a?.last_user_sync_ts), Number(a?.stream_id)], [50, 60, 1]);
    assert.deepEqual(
      (await store.changedBetween(1, 2)).map((r) => r.user_id),
      ['@b:x'],
    );
    assert.deepEqual((await store.getMany(['@a:x', '@b:x', '@c:x'])).map((r) => r.user_id).sort(), ['@a:x', '@b:x']);
    assert.deepEqual(
      (await store.notOffline()).map((r) => r.user_id),
      ['@a:x'],
    );
  });

  test('push rules: upsert and batch lookups', async () => {
    const store = new PushRulesStore(await setup());
    await db.transaction((tx) => store.put(tx, '@a:x', '{}', 2));
    await db.transaction((tx) => store.put(tx, '@a:x', '{"defaults":{}}', 4));
    assert.deepEqual(await store.get('@a:x').then((r) => r && [r.rules_json, Number(r.stream_id)]), ['{"defaults":{}}', 4]);
    assert.deepEqual([...(await store.getMany(['@a:x', '@b:x']))], [['@a:x', '{"defaults":{}}']]);
    assert.equal(await store.maxStreamId(), 4);
  });

  test('push actions: room-wide rows, exceptions, own marks and counts', async () => {
    const store = new PushActionsStore(await setup());
    await db.transaction(async (tx) => {
      for (const [so, thread, highlight] of [
        [1, 'main', false],
        [2, 'main', false],
        [3, '$root', false],
      ] as const) {
        await store.insertRoomAction(tx, {
          roomId: '!r:x',
          streamOrdering: so,
          eventId: `$e${so}`,
          sender: '@s:x',
          threadId: thread,
          highlight,
        });
      }
      await store.insertRoomAction(tx, {
        roomId: '!r:x',
        streamOrdering: 4,
        eventId: '$e4',
        sender: '@a:x',
        threadId: 'main',
        highlight: false,
      });
      await store.insert(tx, [
        { roomId: '!r:x', userId: '@a:x', streamOrdering: 2, eventId: '$e2', threadId: 'main', notify: true, highlight: true },
        { roomId: '!r:x', userId: '@b:x', streamOrdering: 1, eventId: '$e1', threadId: 'main', notify: false, highlight: false },
      ]);
      await store.setOwnMark(tx, '@a:x', '!r:x', 'main', 4);
      await store.setOwnMark(tx, '@a:x', '!r:x', 'main', 5);
    });
    const byThread = (rows: Array<{ thread_id: string; notifs: number; highlights: number }>) =>
      Object.fromEntries(rows.map((r) => [r.thread_id, [Number(r.notifs), Number(r.highlights)]]));
    assert.deepEqual(byThread(await store.countsAfter('@a:x', '!r:x', 0, { member: true })), { main: [2, 1], $root: [1, 0] });
    assert.deepEqual(byThread(await store.countsAfter('@b:x', '!r:x', 0, { member: true })), { main: [2, 0], $root: [1, 0] });
    assert.deepEqual(byThread(await store.countsAfter('@a:x', '!r:x', 1, { member: true, threadId: 'main' })), { main: [1, 1] });
    assert.deepEqual(byThread(await store.countsAfter('@a:x', '!r:x', 0, { member: false })), { main: [1, 1] });
    assert.deepEqual(
      (await store.ownMarks('@a:x')).map((m) => Number(m.stream_ordering)),
      [5],
    );
  });

  test('filters: per-user ids from 0', async () => {
    const store = new FiltersStore(await setup());
    assert.equal(await store.add('@a:x', '{}'), 0);
    assert.equal(await store.add('@a:x', '{"a":1}'), 1);
    assert.equal(await store.add('@b:x', '{}'), 0);
    assert.equal(await store.get('@a:x', 1), '{"a":1}');
    assert.equal(await store.get('@a:x', 2), undefined);
  });
});

describe('stream publisher', () => {
  test('rows are published only once every lower position is complete, then together', async () => {
    const bus = new InMemoryBus();
    const updates: StreamUpdate[] = [];
    bus.subscribe((u) => updates.push(u));
    const publisher = new StreamPublisher('receipts', new StreamIdGenerator(10), bus, 'writer1');
    let releaseFirst!: () => void;
    const first = publisher.write(1, async () => {
      await new Promise<void>((resolve) => (releaseFirst = resolve));
      return { value: 'a', rows: [{ stream: 'receipts' as const, roomId: '!a:x', userId: '@a:x' }] };
    });
    const second = await publisher.write(1, async ([position]) => ({
      value: position,
      rows: [{ stream: 'receipts' as const, roomId: '!b:x', userId: '@b:x' }],
    }));
    assert.equal(second, 12);
    assert.deepEqual(updates, [], 'position 12 waits for 11');
    releaseFirst();
    assert.equal(await first, 'a');
    assert.equal(updates.length, 1);
    assert.deepEqual(updates[0], {
      stream: 'receipts',
      instance: 'writer1',
      position: 12,
      rows: [
        { stream: 'receipts', roomId: '!b:x', userId: '@b:x' },
        { stream: 'receipts', roomId: '!a:x', userId: '@a:x' },
      ],
    });
  });

  test('a failed write gives its position up without blocking later ones', async () => {
    const bus = new InMemoryBus();
    const updates: StreamUpdate[] = [];
    bus.subscribe((u) => updates.push(u));
    const publisher = new StreamPublisher('account_data', new StreamIdGenerator(0), bus, 'main');
    await assert.rejects(
      publisher.write(1, async () => Promise.reject(new Error('disk full'))),
      /disk full/,
    );
    await publisher.write(1, async () => ({ value: undefined, rows: [{ stream: 'account_data' as const, userId: '@a:x', type: 't' }] }));
    assert.deepEqual(
      updates.map((u) => u.position),
      [2],
    );
    assert.equal(publisher.current, 2);
  });

  test('the keyed queue runs one task per key at a time, other keys concurrently', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
    };
    await Promise.all([queue.run('a', task('a1', 20)), queue.run('a', task('a2', 1)), queue.run('b', task('b1', 1))]);
    assert.deepEqual(log.indexOf('start a2') > log.indexOf('end a1'), true);
    assert.ok(log.indexOf('end b1') < log.indexOf('end a1'), 'b does not wait for a');
    await assert.rejects(queue.run('a', async () => Promise.reject(new Error('x'))));
    assert.equal(await queue.run('a', async () => 'still works'), 'still works');
  });
});
