// Events from another server through the events writer's intake (spec: server-server API §Checks
// performed on receipt of a PDU), on SQLite and on PostgreSQL. The other server is played by the
// test (test/helpers/remote-server.ts): its own signing key, the room's DAG in memory, and the
// requests for missing events answered from it. What clients see is read over real HTTP.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_DEPTH } from '../../src/core/event-format.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import type { EventsWriter } from '../../src/handlers/kernel/events-writer.js';
import { sendAnswerError, type PduOutcome } from '../../src/handlers/federation/pdu-intake.js';
import { testPostgres } from '../harness/postgres.js';
import { startTestHomeserver, type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { RemoteServer } from '../helpers/remote-server.js';
import { createRoomWith, sendText } from '../helpers/rooms.js';

const REMOTE = 'remote.test';
const BOB = `@bob:${REMOTE}`;
const CAROL = `@carol:${REMOTE}`;
const V12 = getRoomVersion('12')!;
const enc = encodeURIComponent;

interface Backend {
  name: string;
  /** A homeserver; `again` restarts one on the same database. */
  start(again?: TestHomeserver): Promise<TestHomeserver>;
}

const databases = new WeakMap<TestHomeserver, Record<string, unknown>>();
const backends: Backend[] = [
  {
    name: 'sqlite',
    async start(again) {
      const database = again ? databases.get(again) : undefined;
      const hs = await startTestHomeserver(database ? { database } : {});
      databases.set(hs, database ?? { name: 'sqlite3', args: { database: join(hs.dir, 'homeserver.db') } });
      return hs;
    },
  },
  {
    name: 'postgres',
    async start(again) {
      const pg = await testPostgres();
      const database = again
        ? databases.get(again)!
        : { name: 'psycopg2', args: { host: pg.socketDir, user: pg.user, database: await pg.createDatabase('intake') } };
      const hs = await startTestHomeserver({ database });
      databases.set(hs, database);
      return hs;
    },
  },
];

function writerOf(hs: TestHomeserver): EventsWriter {
  return hs.homeserver.services.eventsWriter as EventsWriter;
}

async function receive(hs: TestHomeserver, roomId: string, pdus: unknown[]): Promise<PduOutcome[]> {
  return writerOf(hs).receivePdus(REMOTE, roomId, pdus as JsonObject[]);
}

/** A room of `alice`'s that the remote server knows, with the remote's users joined through /send. */
async function roomWithRemote(
  hs: TestHomeserver,
  alice: TestUser,
  joiners: string[],
  powerLevels: Record<string, unknown> = {},
): Promise<{ roomId: string; remote: RemoteServer }> {
  const roomId = await createRoomWith(hs, alice, [], powerLevels);
  const { services } = hs.homeserver;
  const remote = new RemoteServer(REMOTE, roomId, V12, { serverName: services.serverName, signingKey: services.signingKey });
  await remote.learnFrom(hs);
  writerOf(hs).useFederation(remote.inbound);
  for (const user of joiners) {
    const join = remote.build({
      type: 'm.room.member',
      stateKey: user,
      sender: user,
      content: { membership: 'join', displayname: user.slice(1, 6) },
    });
    assert.deepEqual(await receive(hs, roomId, [join.pdu]), [{ eventId: join.event.eventId, outcome: 'accepted' }]);
  }
  return { roomId, remote };
}

/** The room's timeline as `/messages` serves it, oldest first. */
async function messages(hs: TestHomeserver, user: TestUser, roomId: string): Promise<string[]> {
  const res = await hs.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1000`, { token: user.accessToken });
  assert.equal(res.status, 200);
  return (res.json.chunk as Array<{ event_id: string }>).map((e) => e.event_id).reverse();
}

/** An initial `/sync` of the room: its timeline ids and its `state` (or `state_after`) block. */
async function sync(hs: TestHomeserver, user: TestUser, roomId: string, options: { limit?: number; stateAfter?: boolean } = {}) {
  const filter = enc(JSON.stringify({ room: { timeline: { limit: options.limit ?? 1000 } } }));
  const res = await hs.call(
    'GET',
    `/_matrix/client/v3/sync?timeout=0&filter=${filter}${options.stateAfter ? '&use_state_after=true' : ''}`,
    { token: user.accessToken },
  );
  assert.equal(res.status, 200);
  const room = res.json.rooms?.join?.[roomId];
  const block = options.stateAfter ? room?.state_after : room?.state;
  return {
    timeline: ((room?.timeline?.events ?? []) as Array<{ event_id: string }>).map((e) => e.event_id),
    state: (block?.events ?? []) as Array<{ type: string; state_key: string; event_id: string; content: JsonObject }>,
  };
}

/** `/rooms/{roomId}/state` as `type|state_key` → event id. */
async function currentState(hs: TestHomeserver, user: TestUser, roomId: string): Promise<Map<string, string>> {
  const res = await hs.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state`, { token: user.accessToken });
  assert.equal(res.status, 200);
  return new Map(
    (res.json as Array<{ type: string; state_key: string; event_id: string }>).map((e) => [`${e.type}|${e.state_key}`, e.event_id]),
  );
}

async function status(hs: TestHomeserver, eventId: string): Promise<string | undefined> {
  return (await hs.homeserver.services.stores.eventGraph.get([eventId])).get(eventId)?.status;
}

async function prevEventsOf(hs: TestHomeserver, eventId: string): Promise<string[]> {
  const row = await hs.homeserver.database.get<{ json: string }>('SELECT json FROM events WHERE event_id = ?', [eventId]);
  return (JSON.parse(row!.json) as { prev_events: string[] }).prev_events;
}

async function extremities(hs: TestHomeserver, roomId: string): Promise<string[]> {
  return (await hs.homeserver.services.stores.eventGraph.forwardExtremities(roomId)).sort();
}

/** The remote's view of the state, as `type|state_key` → event id. */
function remoteState(remote: RemoteServer, eventId: string): Map<string, string> {
  return new Map([...remote.state(eventId)].map(([key, id]) => [key.replace('\u0000', '|'), id]));
}

for (const backend of backends) {
  describe(`inbound PDUs: ${backend.name}`, () => {
    let hs: TestHomeserver;
    let alice: TestUser;
    before(async () => {
      hs = await backend.start();
      alice = await hs.createUser('alice');
    });
    after(() => hs.stop());

    test('a remote join and messages sent out of order are accepted in order, seen by /sync and /messages', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const sent = [1, 2, 3].map((i) =>
        remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: `hello ${i}` } }),
      );
      // Children before parents in the transaction: processed parents first.
      const outcomes = await receive(hs, roomId, [sent[2]!.pdu, sent[0]!.pdu, sent[1]!.pdu]);
      assert.deepEqual(
        outcomes.map((o) => o.outcome),
        ['accepted', 'accepted', 'accepted'],
      );
      assert.equal(outcomes.map(sendAnswerError).filter(Boolean).length, 0);
      const ids = sent.map((s) => s.event.eventId);
      assert.deepEqual((await messages(hs, alice, roomId)).slice(-3), ids);
      assert.deepEqual((await sync(hs, alice, roomId)).timeline.slice(-3), ids);
      assert.deepEqual(await extremities(hs, roomId), [ids[2]!]);
      assert.equal(remote.calls.length, 0, 'nothing had to be fetched');
      // The same events again: already held.
      assert.deepEqual(
        (await receive(hs, roomId, [sent[0]!.pdu])).map((o) => o.outcome),
        ['known'],
      );
      // A local event follows the remote's last one.
      const local = await sendText(hs, roomId, alice, 'hi bob');
      assert.deepEqual(await prevEventsOf(hs, local.eventId), [ids[2]!]);
      assert.equal(
        (await currentState(hs, alice, roomId)).get(`m.room.member|${BOB}`),
        remote.extremities().length
          ? [...remote.events.values()].find((e) => e.type === 'm.room.member' && e.stateKey === BOB)!.eventId
          : undefined,
      );
    });

    test('a missing prev event is fetched with get_missing_events and accepted before the event', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const sent = [1, 2, 3].map((i) =>
        remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: `m${i}` } }),
      );
      const outcomes = await receive(hs, roomId, [sent[2]!.pdu]);
      assert.deepEqual(outcomes, [{ eventId: sent[2]!.event.eventId, outcome: 'accepted' }]);
      assert.equal(remote.count('getMissingEvents'), 1);
      assert.equal(remote.count('getStateIds'), 0);
      assert.deepEqual(
        (await messages(hs, alice, roomId)).slice(-3),
        sent.map((s) => s.event.eventId),
      );
      assert.deepEqual(await extremities(hs, roomId), [sent[2]!.event.eventId]);
    });

    test('a gap get_missing_events cannot close is filled with the state from /state_ids; it becomes a backward extremity', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const before = await extremities(hs, roomId);
      // Later than the join by the clock too, so state resolution orders it after the join.
      const rename = remote.build({
        type: 'm.room.member',
        stateKey: BOB,
        sender: BOB,
        content: { membership: 'join', displayname: 'Robert' },
        originServerTs: Date.now() + 60_000,
      });
      const sent = Array.from({ length: 25 }, (_, i) =>
        remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: `long ${i}` } }),
      );
      const last = sent[24]!;
      assert.deepEqual(
        (await receive(hs, roomId, [last.pdu])).map((o) => o.outcome),
        ['accepted'],
      );
      assert.equal(remote.count('getMissingEvents'), 1);
      assert.ok(remote.count('getStateIds') >= 1, 'the state at the gap was asked for');
      const timeline = await messages(hs, alice, roomId);
      const accepted = sent.filter((s) => timeline.includes(s.event.eventId));
      assert.ok(accepted.length >= 10 && accepted.length < 25, `${accepted.length} events in the timeline`);
      assert.deepEqual(
        timeline.slice(-accepted.length),
        accepted.map((s) => s.event.eventId),
        'in order',
      );
      assert.ok(!timeline.includes(rename.event.eventId), 'an event of the gap stays an outlier');
      const gap = sent[24 - accepted.length]!.event.eventId;
      assert.equal(await status(hs, gap), 'outlier');
      assert.deepEqual(await hs.homeserver.services.stores.eventGraph.backwardExtremities(roomId), [gap]);
      // The state at the gap counts: resolved with our branch (Bob's join), Bob is Robert, as the
      // remote's own resolution of the same two branches says.
      const res = await hs.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(BOB)}`, {
        token: alice.accessToken,
      });
      assert.equal(res.json.displayname, 'Robert');
      const expected = new Map(
        [...remote.stateBefore([before[0]!, last.event.eventId])].map(([key, id]) => [key.replace('\u0000', '|'), id]),
      );
      assert.deepEqual(await currentState(hs, alice, roomId), expected);
      // Bob's join is still an extremity (nothing we hold follows it); a local event follows both.
      const local = await sendText(hs, roomId, alice, 'after the gap');
      assert.equal((await prevEventsOf(hs, local.eventId)).length, 2);
    });

    test('unauthorised and forged events are rejected or dropped, never reach clients, and are never prev events', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const before = await extremities(hs, roomId);
      const stranger = remote.build({
        type: 'm.room.message',
        sender: `@mallory:${REMOTE}`,
        content: { msgtype: 'm.text', body: 'let me in' },
        prevs: before,
      });
      const usurp = remote.build({
        type: 'm.room.power_levels',
        stateKey: '',
        sender: BOB,
        content: { users: { [BOB]: 100 } },
        prevs: before,
      });
      const outcomes = await receive(hs, roomId, [stranger.pdu, usurp.pdu]);
      assert.deepEqual(
        outcomes.map((o) => o.outcome),
        ['rejected', 'rejected'],
      );
      assert.ok(outcomes.every((o) => sendAnswerError(o) !== undefined));
      assert.equal(await status(hs, stranger.event.eventId), 'rejected');
      assert.equal(await status(hs, usurp.event.eventId), 'rejected');
      // Forged: a prev event whose copy fails the signature check is dropped when fetched.
      const honest = remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: 'honest' }, prevs: before });
      const child = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'child' },
        prevs: [honest.event.eventId],
      });
      const forged = { ...honest.pdu, depth: 999 };
      remote.override.getMissingEvents = () => [forged];
      remote.override.getEvent = () => forged;
      try {
        assert.deepEqual(
          (await receive(hs, roomId, [child.pdu])).map((o) => o.outcome),
          ['failed'],
        );
      } finally {
        remote.override = {};
      }
      assert.equal(await status(hs, honest.event.eventId), undefined);
      assert.equal(await status(hs, child.event.eventId), undefined);

      const hidden = [stranger, usurp, honest, child].map((s) => s.event.eventId);
      const timeline = await messages(hs, alice, roomId);
      const synced = await sync(hs, alice, roomId);
      for (const id of hidden) {
        assert.ok(!timeline.includes(id), `${id} not in /messages`);
        assert.ok(!synced.timeline.includes(id), `${id} not in /sync`);
      }
      assert.ok(!synced.state.some((e) => hidden.includes(e.event_id)));
      assert.ok(![...(await currentState(hs, alice, roomId)).values()].some((id) => hidden.includes(id)), 'nor in the state');
      assert.deepEqual(await extremities(hs, roomId), before);
      const local = await sendText(hs, roomId, alice, 'after the rejections');
      assert.deepEqual(await prevEventsOf(hs, local.eventId), before, 'a local event never follows a rejected one');
    });

    test('soft failure (spec example A, B, C, D): a ban-evading event stays out of the timeline, a later merge is accepted', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB, CAROL], { events: { 'm.room.topic': 0 } });
      const a = remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: 'A' } });
      assert.deepEqual(
        (await receive(hs, roomId, [a.pdu])).map((o) => o.outcome),
        ['accepted'],
      );
      // B: Alice bans Bob here; the remote has not heard of it.
      const ban = await hs.call('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/ban`, {
        token: alice.accessToken,
        body: { user_id: BOB },
      });
      assert.equal(ban.status, 200);
      const b = (await currentState(hs, alice, roomId)).get(`m.room.member|${BOB}`)!;
      // C: Bob sets the topic on top of A, evading the ban.
      const c = remote.build({ type: 'm.room.topic', stateKey: '', sender: BOB, content: { topic: 'evading' }, prevs: [a.event.eventId] });
      const outcome = await receive(hs, roomId, [c.pdu]);
      assert.deepEqual(
        outcome.map((o) => o.outcome),
        ['soft_failed'],
      );
      assert.equal(sendAnswerError(outcome[0]!), undefined, 'soft failure is no error for the sender');
      assert.equal(await status(hs, c.event.eventId), 'soft_failed');
      assert.deepEqual(await extremities(hs, roomId), [b], 'C is no extremity');
      assert.ok(!(await messages(hs, alice, roomId)).includes(c.event.eventId));
      assert.ok(!(await sync(hs, alice, roomId)).timeline.includes(c.event.eventId));
      assert.equal((await currentState(hs, alice, roomId)).get('m.room.topic|'), undefined);
      // D: Carol's server had C before B, and follows both.
      await remote.learnFrom(hs);
      const d = remote.build({
        type: 'm.room.message',
        sender: CAROL,
        content: { msgtype: 'm.text', body: 'D' },
        prevs: [b, c.event.eventId],
      });
      assert.deepEqual(
        (await receive(hs, roomId, [d.pdu])).map((o) => o.outcome),
        ['accepted'],
      );
      const timeline = await messages(hs, alice, roomId);
      assert.ok(timeline.includes(d.event.eventId));
      assert.ok(!timeline.includes(c.event.eventId), 'C stays out of the timeline');
      assert.deepEqual(await extremities(hs, roomId), [d.event.eventId]);
      // State resolution v2.1 prefers the ban: C's topic is not in the state at D; both servers agree.
      const state = await currentState(hs, alice, roomId);
      assert.equal(state.get('m.room.topic|'), remoteState(remote, d.event.eventId).get('m.room.topic|'));
      assert.equal(state.get('m.room.topic|'), undefined);
      assert.equal(state.get(`m.room.member|${BOB}`), b);
    });

    test('hostile input: bad PDUs, unknown rooms, unfetchable prev events, foreign auth events, huge depths, junk answers', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const other = await createRoomWith(hs, alice);
      const otherPowerLevels = (await currentState(hs, alice, other)).get('m.room.power_levels|')!;

      const malformed = await receive(hs, roomId, [42, 'x', null, {}, { type: 'm.room.message', room_id: roomId }, [1, 2]]);
      assert.deepEqual(
        malformed.map((o) => o.outcome),
        ['dropped', 'dropped', 'dropped', 'dropped', 'dropped', 'dropped'],
      );
      const unknownRoom = await writerOf(hs).receivePdus(REMOTE, '!nowhere:example.org', [{ room_id: '!nowhere:example.org' }]);
      assert.deepEqual(
        unknownRoom.map((o) => o.outcome),
        ['failed'],
      );

      const before = await extremities(hs, roomId);
      const orphan = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'orphan' },
        prevs: [`$${'d'.repeat(43)}`],
        stateBefore: remote.state(before[0]!),
      });
      const tooMany = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'many' },
        prevs: Array.from({ length: 21 }, (_, i) => `$${String(i).padStart(43, 'x')}`),
      });
      const foreignAuth = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'foreign' },
        prevs: before,
        authEvents: [otherPowerLevels, (await currentState(hs, alice, roomId)).get(`m.room.member|${BOB}`)!],
      });
      remote.override.getEvent = (id) => (id === otherPowerLevels ? { junk: true } : undefined);
      remote.override.getEventAuth = () => [1, 'two', { three: 3 }];
      const hostile = await receive(hs, roomId, [orphan.pdu, tooMany.pdu, foreignAuth.pdu]);
      remote.override = {};
      assert.deepEqual(
        hostile.map((o) => o.outcome),
        ['failed', 'dropped', 'failed'],
      );

      // Junk answers to every request.
      const lost = remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: 'lost' }, prevs: before });
      const afterLost = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'after lost' },
        prevs: [lost.event.eventId],
      });
      remote.override = {
        getMissingEvents: () => ({ not: 'a list' }),
        getStateIds: () => ({ pduIds: 'nope', authChainIds: [] }),
        getEvent: () => {
          throw new Error('connection reset');
        },
      };
      assert.deepEqual(
        (await receive(hs, roomId, [afterLost.pdu])).map((o) => o.outcome),
        ['failed'],
      );
      remote.override = { getMissingEvents: () => [afterLost.pdu, afterLost.pdu, 'junk', lost.pdu] };
      const sensible = await receive(hs, roomId, [afterLost.pdu]);
      assert.deepEqual(
        sensible.map((o) => o.outcome),
        ['accepted'],
        JSON.stringify(sensible),
      );
      remote.override = {};

      // An event claiming the greatest depth is fine; our next event stays at the limit.
      const deep = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { msgtype: 'm.text', body: 'deep' },
        depth: MAX_DEPTH,
        prevs: [afterLost.event.eventId],
      });
      assert.deepEqual(
        (await receive(hs, roomId, [deep.pdu])).map((o) => o.outcome),
        ['accepted'],
      );
      const local = await sendText(hs, roomId, alice, 'still here');
      const row = await hs.homeserver.database.get<{ depth: number }>('SELECT depth FROM events WHERE event_id = ?', [local.eventId]);
      assert.equal(Number(row!.depth), MAX_DEPTH);
      assert.deepEqual(await prevEventsOf(hs, local.eventId), [deep.event.eventId]);

      const timeline = await messages(hs, alice, roomId);
      for (const s of [orphan, tooMany, foreignAuth]) assert.ok(!timeline.includes(s.event.eventId));
      assert.equal((await sync(hs, alice, roomId)).timeline.at(-1), local.eventId);
    });

    test('with more than ten forward extremities a local event follows the ten deepest, and the next one the rest', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB]);
      const base = await extremities(hs, roomId);
      const forks = Array.from({ length: 12 }, (_, i) =>
        remote.build({
          type: 'm.room.message',
          sender: BOB,
          content: { msgtype: 'm.text', body: `fork ${i}` },
          prevs: base,
          depth: 100 + i,
        }),
      );
      assert.deepEqual(
        (
          await receive(
            hs,
            roomId,
            forks.map((f) => f.pdu),
          )
        ).map((o) => o.outcome),
        forks.map(() => 'accepted'),
      );
      assert.equal((await extremities(hs, roomId)).length, 12);
      const first = await sendText(hs, roomId, alice, 'ten of them');
      const prevs = await prevEventsOf(hs, first.eventId);
      assert.deepEqual(
        [...prevs].sort(),
        forks
          .slice(2)
          .map((f) => f.event.eventId)
          .sort(),
        'the ten deepest',
      );
      assert.deepEqual(await extremities(hs, roomId), [first.eventId, forks[0]!.event.eventId, forks[1]!.event.eventId].sort());
      const second = await sendText(hs, roomId, alice, 'the rest');
      assert.equal((await prevEventsOf(hs, second.eventId)).length, 3);
      assert.deepEqual(await extremities(hs, roomId), [second.eventId]);
      assert.ok((await sync(hs, alice, roomId)).timeline.includes(second.eventId));
    });

    test('the read side federation serves: state before and after events, auth chains, get_missing_events, backfill', async () => {
      const { roomId, remote } = await roomWithRemote(hs, alice, [BOB], { events: { 'm.room.name': 0 } });
      const m1 = remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: 'one' } });
      const name = remote.build({ type: 'm.room.name', stateKey: '', sender: BOB, content: { name: 'named' } });
      const m2 = remote.build({ type: 'm.room.message', sender: BOB, content: { msgtype: 'm.text', body: 'two' } });
      const bad = remote.build({
        type: 'm.room.power_levels',
        stateKey: '',
        sender: BOB,
        content: { users: { [BOB]: 100 } },
        prevs: [m2.event.eventId],
      });
      assert.deepEqual(
        (await receive(hs, roomId, [m1.pdu, name.pdu, m2.pdu, bad.pdu])).map((o) => o.outcome),
        ['accepted', 'accepted', 'accepted', 'rejected'],
      );
      const graph = hs.homeserver.services.roomGraph;
      const ids = (state: ReadonlyMap<string, string> | undefined) =>
        new Map([...(state ?? [])].map(([k, v]) => [k.replace('\u0000', '|'), v]));
      const nameKey = 'm.room.name|';
      assert.equal(ids(await graph.stateIdsAfter(roomId, name.event.eventId)).get(nameKey), name.event.eventId);
      assert.equal(ids(await graph.stateIdsBefore(roomId, V12, name.event.eventId)).get(nameKey), undefined);
      assert.deepEqual(ids(await graph.stateIdsBefore(roomId, V12, m2.event.eventId)), remoteState(remote, name.event.eventId));
      assert.deepEqual(ids(await graph.stateIdsBefore(roomId, V12, name.event.eventId)), remoteState(remote, m1.event.eventId));
      // A rejected event: the state before it, which it did not change.
      assert.deepEqual(ids(await graph.stateIdsBefore(roomId, V12, bad.event.eventId)), remoteState(remote, m2.event.eventId));
      assert.equal(await graph.stateIdsAfter(roomId, '$unknown'), undefined);
      // The auth chain is the remote's /event_auth answer.
      const chain = await graph.authChainIds(roomId, V12, [m2.event.eventId]);
      const theirs = (await remote.fetcher.getEventAuth(REMOTE, roomId, m2.event.eventId)) as JsonObject[];
      assert.deepEqual([...chain].sort(), theirs.map((pdu) => remote.learn(pdu).eventId).sort());
      // get_missing_events: between m1 and m2 lies the name event, as the remote's walk says.
      const missing = await graph.missingEvents(roomId, V12, { earliest: [m1.event.eventId], latest: [m2.event.eventId], limit: 10 });
      assert.deepEqual(
        missing.map((e) => e.eventId),
        [name.event.eventId],
      );
      const theirWalk = (await remote.fetcher.getMissingEvents(REMOTE, roomId, {
        earliest: [m1.event.eventId],
        latest: [m2.event.eventId],
        limit: 10,
        minDepth: 0,
      })) as JsonObject[];
      assert.deepEqual(
        theirWalk.map((pdu) => remote.learn(pdu).eventId),
        [name.event.eventId],
      );
      // Backfill from m2: m2 and what precedes it, newest first; the rejected event never.
      const back = await graph.backfill(roomId, V12, [m2.event.eventId], 3);
      assert.deepEqual(
        back.map((e) => e.eventId),
        [m2.event.eventId, name.event.eventId, m1.event.eventId],
      );
      assert.deepEqual(
        (await graph.backfill(roomId, V12, [bad.event.eventId], 5)).map((e) => e.eventId),
        [],
      );
      assert.deepEqual(await graph.forwardExtremities(roomId), [m2.event.eventId]);
    });

    test('cycles in prev_events (room version 2, where the sender chooses event ids) neither hang nor throw', async () => {
      const create = await hs.call('POST', '/_matrix/client/v3/createRoom', {
        token: alice.accessToken,
        body: { room_version: '2', preset: 'public_chat' },
      });
      assert.equal(create.status, 200);
      const roomId: string = create.json.room_id;
      const { services } = hs.homeserver;
      const remote = new RemoteServer(REMOTE, roomId, getRoomVersion('2')!, {
        serverName: services.serverName,
        signingKey: services.signingKey,
      });
      await remote.learnFrom(hs);
      writerOf(hs).useFederation(remote.inbound);
      const join = remote.build({ type: 'm.room.member', stateKey: BOB, sender: BOB, content: { membership: 'join' } });
      assert.deepEqual(
        (await receive(hs, roomId, [join.pdu])).map((o) => o.outcome),
        ['accepted'],
      );
      const stateBefore = remote.state(join.event.eventId);
      const id1 = `$cycle-one:${REMOTE}`;
      const id2 = `$cycle-two:${REMOTE}`;
      const one = remote.build({ type: 'm.room.message', sender: BOB, content: { body: '1' }, eventId: id1, prevs: [id2], stateBefore });
      const two = remote.build({ type: 'm.room.message', sender: BOB, content: { body: '2' }, eventId: id2, prevs: [id1], stateBefore });
      const outcomes = await receive(hs, roomId, [one.pdu, two.pdu]);
      assert.equal(outcomes.length, 2);
      for (const o of outcomes) assert.ok(['accepted', 'known', 'failed', 'rejected'].includes(o.outcome), JSON.stringify(o));
      const local = await sendText(hs, roomId, alice, 'after the cycle');
      assert.ok((await messages(hs, alice, roomId)).includes(local.eventId));
      // An event id another room's event has already (possible where senders choose ids).
      const otherRoom = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { room_version: '2' } });
      const taken = (await messages(hs, alice, otherRoom.json.room_id)).at(-1)!;
      const squatter = remote.build({
        type: 'm.room.message',
        sender: BOB,
        content: { body: 'squat' },
        eventId: taken,
        prevs: [local.eventId],
      });
      assert.deepEqual(
        (await receive(hs, roomId, [squatter.pdu])).map((o) => o.outcome),
        ['dropped'],
      );
      assert.equal((await hs.homeserver.services.stores.eventGraph.get([taken])).get(taken)!.room_id, otherRoom.json.room_id);
    });
  });

  describe(`forks and state resolution: ${backend.name}`, () => {
    // Local events then follow both branches, and a restart keeps the resolved state.
    test('concurrent name and power-level changes on two branches: the resolved state is what /sync and /state show', async () => {
      let hs = await backend.start();
      try {
        const alice = await hs.createUser('alice');
        const { roomId, remote } = await roomWithRemote(hs, alice, [BOB], {
          users: { [BOB]: 50 },
          events: { 'm.room.name': 50, 'm.room.power_levels': 50 },
        });
        const fork = (await extremities(hs, roomId))[0]!;
        // Our branch: Alice names the room.
        const ours = await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
          type: 'm.room.name',
          stateKey: '',
          sender: alice.userId,
          content: { name: 'Alice names it' },
        });
        // Their branch, on the same parent: Bob names it too and raises Carol.
        // Older by the clock than Alice's: resolution keeps hers, and Bob's event changes no state.
        const name = remote.build({
          type: 'm.room.name',
          stateKey: '',
          sender: BOB,
          content: { name: 'Bob names it' },
          prevs: [fork],
          originServerTs: Date.now() - 60_000,
        });
        const levels = remote.build({
          type: 'm.room.power_levels',
          stateKey: '',
          sender: BOB,
          content: { users: { [BOB]: 50, [CAROL]: 50 }, events: { 'm.room.name': 50, 'm.room.power_levels': 50 } },
          prevs: [name.event.eventId],
        });
        // Readers have the room's state cached: the bus rows must tell them what resolution changed.
        await currentState(hs, alice, roomId);
        assert.deepEqual(
          (await receive(hs, roomId, [name.pdu, levels.pdu])).map((o) => o.outcome),
          ['accepted', 'accepted'],
        );
        assert.deepEqual(await extremities(hs, roomId), [ours.eventId, levels.event.eventId].sort());
        // Both servers resolve the same: the remote's independent resolution of the two branches.
        await remote.learnFrom(hs);
        const expected = remote.stateBefore([ours.eventId, levels.event.eventId]);
        const expectedState = new Map([...expected].map(([key, id]) => [key.replace('\u0000', '|'), id]));
        assert.deepEqual(await currentState(hs, alice, roomId), expectedState);
        assert.equal(expected.get('m.room.name\u0000'), ours.eventId, "Alice's name stays");
        const afterSync = await sync(hs, alice, roomId, { stateAfter: true });
        assert.deepEqual(new Map(afterSync.state.map((e) => [`${e.type}|${e.state_key}`, e.event_id])), expectedState, 'sync state_after');

        // Restart: the extremities and the state are read back from the database.
        await hs.stop();
        hs = await backend.start(hs);
        writerOf(hs).useFederation(remote.inbound);
        assert.deepEqual(await currentState(hs, alice, roomId), expectedState);
        const local = await sendText(hs, roomId, alice, 'merging');
        assert.deepEqual(
          (await prevEventsOf(hs, local.eventId)).sort(),
          [ours.eventId, levels.event.eventId].sort(),
          'a local event follows both branches',
        );
        assert.deepEqual(await extremities(hs, roomId), [local.eventId]);
        await remote.learnFrom(hs);
        assert.deepEqual(remoteState(remote, local.eventId), expectedState, 'the remote agrees on the state after our merge');
        const initial = await sync(hs, alice, roomId, { limit: 1 });
        assert.deepEqual(initial.timeline, [local.eventId]);
        assert.deepEqual(new Map(initial.state.map((e) => [`${e.type}|${e.state_key}`, e.event_id])), expectedState, 'initial sync state');
        const nameEvent = initial.state.find((e) => e.type === 'm.room.name')!;
        assert.equal(nameEvent.event_id, expected.get('m.room.name\u0000'));
        // Carol, raised on Bob's branch, may now name the room (the power levels resolved to Bob's).
        if (expected.get('m.room.power_levels\u0000') === levels.event.eventId) {
          const carolJoin = remote.build({ type: 'm.room.member', stateKey: CAROL, sender: CAROL, content: { membership: 'join' } });
          const carolName = remote.build({ type: 'm.room.name', stateKey: '', sender: CAROL, content: { name: 'Carol names it' } });
          assert.deepEqual(
            (await receive(hs, roomId, [carolJoin.pdu, carolName.pdu])).map((o) => o.outcome),
            ['accepted', 'accepted'],
          );
          assert.equal((await currentState(hs, alice, roomId)).get('m.room.name|'), carolName.event.eventId);
        }
      } finally {
        await hs.stop();
      }
    });

    // Its latest event is its extremity, and the state of its old events comes from room_state.
    test('a room from before schema 0051 keeps working: a fork off its history resolves', async () => {
      let hs = await backend.start();
      try {
        const alice = await hs.createUser('alice');
        const { roomId, remote } = await roomWithRemote(hs, alice, [BOB], { events: { 'm.room.topic': 0 } });
        await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
          type: 'm.room.topic',
          stateKey: '',
          sender: alice.userId,
          content: { topic: 'old times' },
        });
        const old = await sendText(hs, roomId, alice, 'before the upgrade');
        const latest = await sendText(hs, roomId, alice, 'last before the upgrade');
        // Back to schema 50: the graph tables (and the later ones) gone, as in a database written
        // by an older Myelin.
        await hs.stop();
        hs = await backend.start(hs);
        const { database } = hs.homeserver;
        const graphTables = [
          'event_graph',
          'event_edges',
          'event_auth_edges',
          'room_forward_extremities',
          'room_backward_extremities',
          'state_groups',
          'state_group_entries',
        ];
        const laterTables = [
          'federation_destinations',
          'federation_sender_positions',
          'federation_to_device_outbox',
          'remote_device_lists',
          'remote_device_keys',
        ];
        for (const table of [...graphTables, ...laterTables]) await database.exec(`DROP TABLE ${table}`);
        if (database.dialect === 'postgres') await database.exec('DROP SEQUENCE state_group_id_seq');
        await database.run('DELETE FROM schema_version WHERE version >= 51');
        await hs.stop();
        hs = await backend.start(hs); // migrates to 51 again, from the stored events
        writerOf(hs).useFederation(remote.inbound);
        assert.deepEqual(await extremities(hs, roomId), [latest.eventId]);
        const graph = hs.homeserver.services.roomGraph;
        assert.equal(
          (await graph.stateIdsAfter(roomId, old.eventId))?.get('m.room.topic\u0000') !== undefined,
          true,
          'room_state at its position',
        );
        const local = await sendText(hs, roomId, alice, 'after the upgrade');
        assert.deepEqual(await prevEventsOf(hs, local.eventId), [latest.eventId]);
        // A remote event on an old event (a fork off history) is checked against room_state there.
        await remote.learnFrom(hs);
        const fork = remote.build({
          type: 'm.room.topic',
          stateKey: '',
          sender: BOB,
          content: { topic: 'from the past' },
          prevs: [old.eventId],
          originServerTs: Date.now() + 60_000,
        });
        assert.deepEqual(
          (await receive(hs, roomId, [fork.pdu])).map((o) => o.outcome),
          ['accepted'],
        );
        assert.deepEqual(await extremities(hs, roomId), [local.eventId, fork.event.eventId].sort());
        const expected = new Map(
          [...remote.stateBefore([local.eventId, fork.event.eventId])].map(([key, id]) => [key.replace('\u0000', '|'), id]),
        );
        assert.deepEqual(await currentState(hs, alice, roomId), expected);
      } finally {
        await hs.stop();
      }
    });

    test('storage grows with state changes: 1,000 messages, 50 state changes give ~50 small state groups, not 1,000 copies', async () => {
      const hs = await backend.start();
      try {
        const alice = await hs.createUser('alice');
        const roomId = await createRoomWith(hs, alice);
        for (let i = 0; i < 1000; i++) {
          if (i % 20 === 0)
            await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
              type: 'm.room.topic',
              stateKey: '',
              sender: alice.userId,
              content: { topic: `topic ${i}` },
            });
          await sendText(hs, roomId, alice, `message ${i}`);
        }
        const { groups, entries } = await hs.homeserver.services.stores.stateGroups.countForRoom(roomId);
        const stateSize = (await currentState(hs, alice, roomId)).size;
        assert.ok(groups <= 50 + 10, `${groups} groups`);
        assert.ok(entries <= groups * 4, `${entries} entries for ${groups} groups`);
        assert.ok(entries < (1000 * stateSize) / 10, `${entries} entries: nowhere near events × state (${1000 * stateSize})`);
        // And every event's state is still exact: the state after a message in the middle.
        const middle = await hs.homeserver.database.get<{ event_id: string }>(
          "SELECT event_id FROM events WHERE room_id = ? AND json LIKE '%message 500%'",
          [roomId],
        );
        const after = await hs.homeserver.services.roomGraph.stateIdsAfter(roomId, middle!.event_id);
        assert.equal((await hs.homeserver.services.eventCache.get(after!.get('m.room.topic\u0000')!))!.event.content.topic, 'topic 500');
      } finally {
        await hs.stop();
      }
    });
  });
}
