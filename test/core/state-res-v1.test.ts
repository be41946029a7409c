// State resolution v1 (room v1, `S:content/rooms/v1.md`): power levels, then join rules, then
// members, each walked from the lowest depth while the next candidate is allowed on top; every
// other key takes the deepest candidate that is allowed (ties to the lowest sha1(event id)).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { stateKey, type RoomEvent, type StateKey } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { resolveState } from '../../src/core/state-res.js';
import { makeEvent } from './helpers/events.js';
import { ALICE, BOB, CHARLIE, EventMap } from './helpers/state-res-scenarios.js';

const V1 = getRoomVersion('1')!;
const ROOM = '!room:example.com';

function room() {
  const events = new EventMap();
  const add = (id: string, type: string, sender: string, key: string, content: JsonObject, depth: number, auth: RoomEvent[]) =>
    events.add(
      makeEvent({
        id,
        type,
        sender,
        stateKey: key,
        content,
        depth,
        roomId: ROOM,
        originServerTs: depth,
        authEvents: auth.map((e) => e.eventId),
      }),
    );
  const create = add('$create:example.com', 'm.room.create', ALICE, '', { creator: ALICE }, 1, []);
  const ma = add('$ma:example.com', 'm.room.member', ALICE, ALICE, { membership: 'join' }, 2, [create]);
  const pl = add('$pl:example.com', 'm.room.power_levels', ALICE, '', { users: { [ALICE]: 100, [BOB]: 50 } }, 3, [create, ma]);
  const jr = add('$jr:example.com', 'm.room.join_rules', ALICE, '', { join_rule: 'public' }, 4, [create, ma, pl]);
  const mb = add('$mb:example.com', 'm.room.member', BOB, BOB, { membership: 'join' }, 5, [create, pl, jr]);
  const mc = add('$mc:example.com', 'm.room.member', CHARLIE, CHARLIE, { membership: 'join' }, 6, [create, pl, jr]);
  const base = [create, ma, pl, jr, mb, mc];
  const stateOf = (...list: RoomEvent[]): Map<StateKey, string> =>
    new Map([...base, ...list].map((e) => [stateKey(e.type, e.stateKey!), e.eventId]));
  return { events, add, stateOf, create, ma, pl, jr, mb, mc };
}

const sha1 = (id: string) => createHash('sha1').update(id).digest('hex');

describe('state resolution v1', () => {
  test('a power-levels change the previous levels do not allow is dropped', () => {
    const r = room();
    // Bob (50) tries to make himself 100: not allowed on top of the older levels.
    const grab = r.add('$grab:example.com', 'm.room.power_levels', BOB, '', { users: { [ALICE]: 100, [BOB]: 100 } }, 9, [
      r.create,
      r.mb,
      r.pl,
    ]);
    const state = resolveState(V1, [r.stateOf(), r.stateOf(grab)], r.events);
    assert.equal(state.get(stateKey('m.room.power_levels', '')), r.pl.eventId);
  });

  test('an allowed deeper power-levels change wins', () => {
    const r = room();
    const promote = r.add(
      '$promote:example.com',
      'm.room.power_levels',
      ALICE,
      '',
      { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } },
      9,
      [r.create, r.ma, r.pl],
    );
    const state = resolveState(V1, [r.stateOf(promote), r.stateOf()], r.events);
    assert.equal(state.get(stateKey('m.room.power_levels', '')), promote.eventId);
  });

  test('a ban applies on top of the join it conflicts with', () => {
    const r = room();
    const ban = r.add('$ban:example.com', 'm.room.member', ALICE, BOB, { membership: 'ban' }, 9, [r.create, r.ma, r.pl, r.mb]);
    for (const sets of [
      [r.stateOf(ban), r.stateOf()],
      [r.stateOf(), r.stateOf(ban)],
    ]) {
      assert.equal(resolveState(V1, sets, r.events).get(stateKey('m.room.member', BOB)), ban.eventId);
    }
  });

  test('other keys take the deepest candidate that is allowed', () => {
    const r = room();
    const good = r.add('$topic-alice:example.com', 'm.room.topic', ALICE, '', { topic: 'a' }, 7, [r.create, r.ma, r.pl]);
    // Charlie (power 0) may not set the topic (state_default 50); his is deeper but not allowed.
    const bad = r.add('$topic-charlie:example.com', 'm.room.topic', CHARLIE, '', { topic: 'c' }, 8, [r.create, r.mc, r.pl]);
    const state = resolveState(V1, [r.stateOf(good), r.stateOf(bad)], r.events);
    assert.equal(state.get(stateKey('m.room.topic', '')), good.eventId);
  });

  test('when no candidate is allowed, the shallowest one is kept', () => {
    const r = room();
    const a = r.add('$t1:example.com', 'm.room.topic', CHARLIE, '', { topic: 'a' }, 7, [r.create, r.mc, r.pl]);
    const b = r.add('$t2:example.com', 'm.room.topic', CHARLIE, '', { topic: 'b' }, 8, [r.create, r.mc, r.pl]);
    const state = resolveState(V1, [r.stateOf(a), r.stateOf(b)], r.events);
    assert.equal(state.get(stateKey('m.room.topic', '')), a.eventId);
  });

  test('equal depths are broken by the lowest sha1 of the event id', () => {
    const r = room();
    const ids = ['$x:example.com', '$y:example.com', '$z:example.com'];
    const topics = ids.map((id) => r.add(id, 'm.room.topic', ALICE, '', { topic: id }, 7, [r.create, r.ma, r.pl]));
    const winner = [...ids].sort((x, y) => (sha1(x) < sha1(y) ? -1 : 1))[0];
    const state = resolveState(
      V1,
      topics.map((t) => r.stateOf(t)),
      r.events,
    );
    assert.equal(state.get(stateKey('m.room.topic', '')), winner);
  });

  test('a key missing from some sets is not a conflict', () => {
    const r = room();
    const name = r.add('$name:example.com', 'm.room.name', ALICE, '', { name: 'n' }, 7, [r.create, r.ma, r.pl]);
    const state = resolveState(V1, [r.stateOf(name), r.stateOf()], r.events);
    assert.deepEqual(state, r.stateOf(name));
  });
});
