// State resolution v2.1 (room v12, MSC4297): the two state resets it was made to fix (the cases of
// Synapse's `tests/state/test_v21.py`, re-expressed), each checked on v12 and, built the v11 way,
// against plain v2 to show the reset v2.1 prevents.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthGraph } from '../../src/core/auth-chain.js';
import { stateKey, type RoomEvent, type StateKey } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion, type RoomVersion } from '../../src/core/room-versions.js';
import { resolveState, separateStateSets } from '../../src/core/state-res.js';
import { makeEvent } from './helpers/events.js';
import { ALICE, BOB, CHARLIE, EVELYN, EventMap, ZARA } from './helpers/state-res-scenarios.js';

const V11 = getRoomVersion('11')!;
const V12 = getRoomVersion('12')!;

/**
 * Builds events with explicit auth events. In v12 the create event is implicit; in earlier
 * versions it is added to every event's auth events, and the creator is written into power-levels
 * `users` with 100 (v12 forbids listing creators there; they have infinite power instead).
 */
function roomBuilder(version: RoomVersion) {
  const events = new EventMap();
  const roomId = version.roomIdFromCreateEvent ? '!CREATE' : '!room:example.com';
  let ts = 0;
  const add = (id: string, type: string, sender: string, key: string, content: JsonObject, auth: RoomEvent[] = []): RoomEvent => {
    const authIds = auth.map((e) => e.eventId);
    if (type !== 'm.room.create' && !version.roomIdFromCreateEvent) authIds.unshift('$CREATE');
    if (type === 'm.room.power_levels' && !version.privilegedCreators) {
      content = { ...content, users: { [ALICE]: 100, ...(content['users'] as JsonObject) } };
    }
    if (type === 'm.room.create') {
      content = { room_version: version.id, ...(version.creatorIsCreateSender ? {} : { creator: sender }) };
    }
    return events.add(
      makeEvent({ id, type, sender, stateKey: key, content, authEvents: authIds, roomId, originServerTs: ++ts, depth: ts }),
    );
  };
  const stateOf = (...list: RoomEvent[]): Map<StateKey, string> => new Map(list.map((e) => [stateKey(e.type, e.stateKey!), e.eventId]));
  return { events, add, stateOf };
}

const join = { membership: 'join' };

function replayConflictedSubgraph(version: RoomVersion) {
  const { events, add, stateOf } = roomBuilder(version);
  const create = add('$CREATE', 'm.room.create', ALICE, '', {});
  const ma = add('$MA', 'm.room.member', ALICE, ALICE, join);
  const power1 = add('$POWER1', 'm.room.power_levels', ALICE, '', { users: {} }, [ma]);
  const jr = add('$JR', 'm.room.join_rules', ALICE, '', { join_rule: 'public' }, [ma, power1]);
  const mb = add('$MB', 'm.room.member', BOB, BOB, join, [power1, jr]);
  const mc = add('$MC', 'm.room.member', CHARLIE, CHARLIE, join, [power1, jr]);
  // Alice promotes Bob; Bob promotes Charlie.
  const power2 = add('$POWER2', 'm.room.power_levels', ALICE, '', { users: { [BOB]: 50 } }, [ma, power1]);
  const power3 = add('$POWER3', 'm.room.power_levels', BOB, '', { users: { [BOB]: 50, [CHARLIE]: 50 } }, [mb, power2]);
  const me1 = add('$ME1', 'm.room.member', EVELYN, EVELYN, join, [power3, jr]);
  // Evelyn renames herself, citing the OLD power levels directly but the new ones through ME1.
  const me2 = add('$ME2', 'm.room.member', EVELYN, EVELYN, { membership: 'join', displayname: 'eve' }, [power1, jr, me1]);
  const mz = add('$MZ', 'm.room.member', ZARA, ZARA, join, [power3, jr]);

  // A server that took its state after ME2 from ME2's auth events has the old power levels.
  const dodgy = stateOf(create, ma, mb, mc, me2, power1, jr);
  const sensible = stateOf(create, ma, mb, mc, mz, power3, jr);
  return { events, dodgy, sensible, ids: { create, power1, power2, power3, me1, me2, mz, jr, ma, mb, mc } };
}

function startFromEmptySet(version: RoomVersion) {
  const { events, add, stateOf } = roomBuilder(version);
  const create = add('$CREATE', 'm.room.create', ALICE, '', {});
  const ma1 = add('$MA1', 'm.room.member', ALICE, ALICE, join);
  const power = add('$POWER', 'm.room.power_levels', ALICE, '', { users: { [BOB]: 100 } }, [ma1]);
  const jr1 = add('$JR1', 'm.room.join_rules', ALICE, '', { join_rule: 'public' }, [ma1, power]);
  const mb = add('$MB', 'm.room.member', BOB, BOB, join, [power, jr1]);
  const jr2 = add('$JR2', 'm.room.join_rules', ALICE, '', { join_rule: 'invite' }, [ma1, power]);
  const ma2 = add('$MA2', 'm.room.member', ALICE, ALICE, { membership: 'leave' }, [power, ma1]);
  const correct = stateOf(create, ma2, mb, power, jr2);
  // Another server hands us a fork citing the old join rules.
  const incorrect = stateOf(create, ma2, mb, power, jr1);
  return { events, correct, incorrect, ids: { create, ma2, mb, power, jr1, jr2 } };
}

describe('state resolution v2.1: the conflicted state subgraph is replayed', () => {
  test('room v12 keeps the newest power levels and replays the dodgy rename first', () => {
    const { events, dodgy, sensible, ids } = replayConflictedSubgraph(V12);
    const expected = new Map(sensible);
    // ME2 cites POWER1 (mainline position 2) and is replayed before ME1 (position 0), so ME1 wins.
    expected.set(stateKey('m.room.member', EVELYN), ids.me1.eventId);
    assert.deepEqual(resolveState(V12, [dodgy, sensible], events), expected);
    assert.deepEqual(resolveState(V12, [sensible, dodgy], events), expected);
  });

  test('the subgraph holds every event on a path between conflicted events, never the create event', () => {
    const { events, dodgy, sensible, ids } = replayConflictedSubgraph(V12);
    const graph = new AuthGraph(events, V12);
    const { conflicted } = separateStateSets([dodgy, sensible]);
    const conflictedIds = [...conflicted.values()].flatMap((set) => [...set]);
    const subgraph = graph.conflictedSubgraph(conflictedIds);
    // POWER2 is in neither the conflicted set nor the auth difference: only the subgraph brings it
    // in. JR (ME2 → JR → POWER1) and MB (POWER3 → MB → POWER1) also lie on such paths.
    assert.deepEqual(
      subgraph,
      new Set([ids.me2, ids.me1, ids.power3, ids.power2, ids.power1, ids.mz, ids.jr, ids.mb].map((e) => e.eventId)),
    );
    const difference = graph.authChainDifference([dodgy.values(), sensible.values()]);
    assert.deepEqual(difference, new Set([ids.me2, ids.me1, ids.mz].map((e) => e.eventId)));
    assert.ok(!subgraph.has(ids.create.eventId) && !difference.has(ids.create.eventId));
  });

  test('plain v2 (room v11) resets the power levels to POWER1 on the same history', () => {
    const { events, dodgy, sensible, ids } = replayConflictedSubgraph(V11);
    const state = resolveState(V11, [dodgy, sensible], events);
    assert.equal(state.get(stateKey('m.room.power_levels', '')), ids.power1.eventId);
    assert.equal(state.get(stateKey('m.room.member', EVELYN)), ids.me2.eventId);
  });
});

describe('state resolution v2.1: power events are replayed from an empty map', () => {
  test('room v12 keeps the newer join rules even though their sender has left', () => {
    const { events, correct, incorrect } = startFromEmptySet(V12);
    assert.deepEqual(resolveState(V12, [correct, incorrect], events), correct);
    assert.deepEqual(resolveState(V12, [incorrect, correct], events), correct);
  });

  test('plain v2 (room v11) loses the join rules altogether', () => {
    const { events, correct, incorrect } = startFromEmptySet(V11);
    const expected = new Map(correct);
    expected.delete(stateKey('m.room.join_rules', ''));
    assert.deepEqual(resolveState(V11, [correct, incorrect], events), expected);
  });
});
