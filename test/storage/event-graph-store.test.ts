// The event graph and state group stores (schema 0051) on both backends: graph rows and edges,
// extremities, skip-delta state groups read back through a fresh cache, and the migration of a
// database written before 0051 (graph rows, edges and extremities made from the stored events).

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stateKey, type StateKey } from '../../src/core/events.js';
import { StateGroups } from '../../src/handlers/kernel/state-groups.js';
import type { Database } from '../../src/storage/database.js';
import { EventGraphStore } from '../../src/storage/event-graph-store.js';
import { migrate } from '../../src/storage/migrations.js';
import { PostgresDatabase } from '../../src/storage/postgres.js';
import { RoomStateStore } from '../../src/storage/room-state-store.js';
import { SCHEMA } from '../../src/storage/schema/index.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { StateGroupsStore } from '../../src/storage/state-groups-store.js';
import { testPostgres } from '../harness/postgres.js';

const backends: Array<{ name: string; open(): Promise<Database> }> = [
  { name: 'sqlite', open: async () => new SqliteDatabase(join(mkdtempSync(join(tmpdir(), 'myelin-graph-')), 'test.db')) },
  {
    name: 'postgres',
    open: async () => {
      const server = await testPostgres();
      return new PostgresDatabase({ host: server.socketDir, user: server.user, database: await server.createDatabase('graph') });
    },
  },
];

const opened: Database[] = [];
after(() => Promise.all(opened.map((db) => db.close())));

const ROOM = '!room:example.org';

function groups(db: Database) {
  const store = new StateGroupsStore(db);
  return { store, fresh: () => new StateGroups(store, db, new RoomStateStore(db)) };
}

for (const backend of backends) {
  describe(`event graph store: ${backend.name}`, () => {
    const open = async (migrations = SCHEMA) => {
      const db = await backend.open();
      opened.push(db);
      await migrate(db, migrations);
      return db;
    };

    test('graph rows, prev and auth edges both ways, and an outlier taken up into the timeline', async () => {
      const db = await open();
      const graph = new EventGraphStore(db);
      await db.transaction(async (tx) => {
        await graph.insert(tx, {
          eventId: '$a',
          roomId: ROOM,
          depth: 1,
          status: 'timeline',
          stateGroup: 1,
          prevEventIds: [],
          authEventIds: [],
        });
        await graph.insert(tx, {
          eventId: '$o',
          roomId: ROOM,
          depth: 2,
          status: 'outlier',
          json: '{"o":1}',
          prevEventIds: ['$a'],
          authEventIds: ['$a'],
        });
        await graph.insert(tx, {
          eventId: '$b',
          roomId: ROOM,
          depth: 3,
          status: 'rejected',
          rejectedReason: 'no',
          stateGroup: 1,
          json: '{"b":1}',
          prevEventIds: ['$a', '$o', '$o'],
          authEventIds: ['$a'],
        });
      });
      const rows = await graph.get(['$a', '$o', '$b', '$unknown']);
      assert.deepEqual([...rows.keys()].sort(), ['$b', '$o'], 'a timeline row without its `events` row is unknown');
      assert.equal(rows.get('$o')!.status, 'outlier');
      assert.equal(rows.get('$o')!.json, '{"o":1}');
      assert.equal(rows.get('$b')!.rejected_reason, 'no');
      assert.equal(rows.get('$b')!.state_group, 1);
      assert.deepEqual((await graph.prevEdges(['$b'])).map((e) => e.prev_event_id).sort(), ['$a', '$o']);
      assert.deepEqual((await graph.childEdges(['$a'])).map((e) => e.event_id).sort(), ['$b', '$o']);
      assert.deepEqual((await graph.authEdges(['$o', '$b'])).map((e) => `${e.event_id}>${e.auth_event_id}`).sort(), ['$b>$a', '$o>$a']);
      // A child stored before its parent (a gap) is found from the parent all the same.
      await db.transaction(async (tx) => {
        await graph.insert(tx, {
          eventId: '$late-child',
          roomId: ROOM,
          depth: 9,
          status: 'timeline',
          stateGroup: 1,
          prevEventIds: ['$late', '$a'],
          authEventIds: [],
        });
        await graph.insert(tx, {
          eventId: '$late',
          roomId: ROOM,
          depth: 8,
          status: 'outlier',
          json: '{}',
          prevEventIds: [],
          authEventIds: [],
        });
      });
      assert.deepEqual(
        (await graph.childEdges(['$late'])).map((e) => `${e.event_id}>${e.prev_event_id}`),
        ['$late-child>$late'],
      );
      assert.deepEqual((await graph.childEdges(['$a'])).map((e) => e.event_id).sort(), ['$b', '$late-child', '$o']);

      // The outlier arrives again through /send: its row is replaced; a rejected event's is not.
      await db.transaction(async (tx) => {
        await graph.insert(tx, {
          eventId: '$o',
          roomId: ROOM,
          depth: 2,
          status: 'soft_failed',
          stateGroup: 7,
          json: '{"o":1}',
          prevEventIds: ['$a'],
          authEventIds: ['$a'],
        });
        await graph.insert(tx, {
          eventId: '$b',
          roomId: ROOM,
          depth: 3,
          status: 'timeline',
          stateGroup: 9,
          prevEventIds: ['$a'],
          authEventIds: [],
        });
      });
      const again = await graph.get(['$o', '$b']);
      assert.equal(again.get('$o')!.status, 'soft_failed');
      assert.equal(again.get('$o')!.state_group, 7);
      assert.equal(again.get('$b')!.status, 'rejected');
      assert.deepEqual(await graph.countByStatus(ROOM), { timeline: 2, soft_failed: 1, rejected: 1, outlier: 1 });
    });

    test('forward and backward extremities', async () => {
      const db = await open();
      const graph = new EventGraphStore(db);
      await db.transaction(async (tx) => {
        await graph.updateForwardExtremities(tx, ROOM, [], ['$a']);
        await graph.updateForwardExtremities(tx, ROOM, ['$a'], ['$b']);
        await graph.updateForwardExtremities(tx, ROOM, [], ['$c']);
      });
      assert.deepEqual((await graph.forwardExtremities(ROOM)).sort(), ['$b', '$c']);
      await db.transaction((tx) => graph.updateForwardExtremities(tx, ROOM, ['$b', '$c'], ['$d']));
      assert.deepEqual(await graph.forwardExtremities(ROOM), ['$d']);
      // Replacing an extremity that is not one only adds.
      await db.transaction((tx) => graph.updateForwardExtremities(tx, ROOM, ['$gone'], ['$e']));
      assert.deepEqual((await graph.forwardExtremities(ROOM)).sort(), ['$d', '$e']);
      await db.transaction(async (tx) => {
        await graph.addBackwardExtremities(tx, ROOM, ['$x', '$y', '$x']);
        await graph.removeBackwardExtremities(tx, ROOM, ['$x']);
      });
      assert.deepEqual(await graph.backwardExtremities(ROOM), ['$y']);
    });

    test('state groups: skip-deltas read back through a fresh cache, removals included', async () => {
      const db = await open();
      const { store, fresh } = groups(db);
      const writer = fresh();
      const key = (i: number): StateKey => stateKey('m.room.member', `@u${i}:example.org`);
      const expected: Array<Map<StateKey, string>> = [];
      const root = await writer.snapshot(ROOM, new Map([[stateKey('m.room.create', ''), '$create']]));
      await db.transaction((tx) => store.insert(tx, root.row));
      let state = new Map([[stateKey('m.room.create', ''), '$create']]);
      const ids = [root.id];
      expected.push(new Map(state));
      let parent = root.id;
      for (let i = 1; i <= 70; i++) {
        const changes = new Map<StateKey, string | null>([[key(i % 20), `$e${i}`]]);
        if (i % 17 === 0) changes.set(key((i + 1) % 20), null);
        const planned = await writer.child(ROOM, parent, changes);
        await db.transaction((tx) => store.insert(tx, planned.row));
        for (const [k, v] of changes) {
          if (v === null) state.delete(k);
          else state.set(k, v);
        }
        state = new Map(state);
        expected.push(new Map(state));
        ids.push(planned.id);
        parent = planned.id;
        // A delta holds at most lowbit(seq) changes, and its chain is logarithmic.
        assert.ok(
          planned.row.entries.length <= (planned.row.seq & -planned.row.seq) * 2,
          `group ${i} has ${planned.row.entries.length} entries`,
        );
        assert.ok(planned.row.deltaDepth <= 7);
      }
      const reader = fresh();
      for (let i = 0; i < ids.length; i++) assert.deepEqual(await reader.stateOf(ids[i]!), expected[i], `state of group ${i}`);
      // A group built from a whole state against a parent stores only the difference.
      const target = new Map(expected[70]);
      target.set(key(3), '$other');
      target.delete(key(4));
      const merged = await reader.forState(ROOM, target, ids[70]);
      assert.deepEqual(new Set(merged.row.entries.map((e) => e[1])).has('@u3:example.org'), true);
      await db.transaction((tx) => store.insert(tx, merged.row));
      assert.deepEqual(await fresh().stateOf(merged.id), target);
      // 72 groups, far fewer entries than 72 copies of a ~20-key state.
      const counts = await store.countForRoom(ROOM);
      assert.equal(counts.groups, 72);
      assert.ok(counts.entries < 72 * 5, `${counts.entries} entries`);
    });

    test('the state after an event without a group is room_state at its position (rooms from before 0051)', async () => {
      const db = await open();
      const roomState = new RoomStateStore(db);
      await db.transaction(async (tx) => {
        await roomState.setState(tx, { roomId: ROOM, type: 'm.room.name', stateKey: '', eventId: '$n1', membership: null, position: 5 });
        await roomState.setState(tx, { roomId: ROOM, type: 'm.room.name', stateKey: '', eventId: '$n2', membership: null, position: 9 });
      });
      const reader = groups(db).fresh();
      assert.deepEqual(
        await reader.stateAfterEvent({ room_id: ROOM, state_group: null, stream_ordering: 7 }),
        new Map([[stateKey('m.room.name', ''), '$n1']]),
      );
      assert.equal(await reader.stateAfterEvent({ room_id: ROOM, state_group: null, stream_ordering: null }), undefined);
    });

    test('migration 0051 gives existing events graph rows, edges and auth edges, and each room its latest event as extremity', async () => {
      const db = await open(SCHEMA.filter((m) => m.version < 51));
      const insert = (position: number, eventId: string, roomId: string, pdu: Record<string, unknown>, stateKey: string | null = null) =>
        db.run(
          `INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts, json, instance_name)
           VALUES (?, ?, ?, 'm.room.message', ?, '@a:example.org', ?, 0, ?, 'main')`,
          [position, eventId, roomId, stateKey, position, JSON.stringify(pdu)],
        );
      // A v12-style room (id lists) and a v1-style room ([id, hashes] pairs); content with \u0000.
      await insert(1, '$c1', '!new:x', { prev_events: [], auth_events: [], content: { body: 'nul \u0000 here' } });
      await insert(2, '$m1', '!new:x', { prev_events: ['$c1'], auth_events: ['$c1'], content: {} });
      await insert(3, '$old1:x', '!old:x', { prev_events: [], auth_events: [], content: {} });
      await insert(4, '$m2', '!new:x', { prev_events: ['$m1'], auth_events: ['$c1', '$m1'], content: {} }, '');
      await insert(
        5,
        '$old2:x',
        '!old:x',
        { prev_events: [['$old1:x', { sha256: 'abc' }]], auth_events: [['$old1:x', { sha256: 'abc' }]], content: {} },
        '',
      );
      await migrate(db);
      const graph = new EventGraphStore(db);
      assert.deepEqual(await graph.forwardExtremities('!new:x'), ['$m2']);
      assert.deepEqual(await graph.forwardExtremities('!old:x'), ['$old2:x']);
      const rows = await graph.get(['$c1', '$m1', '$m2', '$old1:x', '$old2:x']);
      assert.equal(rows.size, 5);
      for (const row of rows.values()) {
        assert.equal(row.status, 'timeline');
        assert.equal(row.state_group, null);
      }
      assert.equal(rows.get('$m2')!.stream_ordering, 4);
      assert.deepEqual((await graph.prevEdges(['$m2', '$old2:x'])).map((e) => `${e.event_id}>${e.prev_event_id}`).sort(), [
        '$m2>$m1',
        '$old2:x>$old1:x',
      ]);
      // Auth edges of state events only (only state events are ever auth events).
      assert.deepEqual((await graph.authEdges(['$m1', '$m2', '$old2:x'])).map((e) => `${e.event_id}>${e.auth_event_id}`).sort(), [
        '$m2>$c1',
        '$m2>$m1',
        '$old2:x>$old1:x',
      ]);
    });
  });
}
