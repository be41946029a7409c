// Auth events selection (`S:content/server-server-api.md` §Auth events selection), which rule 3
// holds every event's auth_events to.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authEventKeysFor, selectAuthEventIds } from '../../src/core/auth-events.js';
import { checkAuthEventsList } from '../../src/core/auth-rules.js';
import { splitStateKey, stateKey } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import type { RoomVersion } from '../../src/core/room-versions.js';
import { ALICE, ALL_VERSIONS, BOB, CAROL, MOD, assertAllowed, n, standardRoom, versions } from './helpers/auth.js';

const keys = (version: RoomVersion, type: string, sk: string | undefined, sender: string, content: JsonObject) =>
  authEventKeysFor(type, sk, sender, content, version).map((k) => splitStateKey(k).join('|'));

describe('auth events selection', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    const create = version.roomIdFromCreateEvent ? [] : ['m.room.create|'];

    test(`v${v} auth_events.selection: a create event has no auth events`, () => {
      assert.deepEqual(keys(version, 'm.room.create', '', ALICE, {}), []);
    });

    const cites = version.roomIdFromCreateEvent ? '' : 'the create event, ';
    test(`v${v} auth_events.selection: other events cite ${cites}power levels and the sender's membership`, () => {
      const expected = [...create, 'm.room.power_levels|', `m.room.member|${BOB}`];
      assert.deepEqual(keys(version, 'm.room.message', undefined, BOB, {}), expected);
      assert.deepEqual(keys(version, 'm.room.name', '', BOB, { name: 'x' }), expected);
    });

    test(`v${v} auth_events.selection: membership adds the target and, for join/invite/knock, the join rules`, () => {
      for (const membership of ['join', 'invite', 'knock']) {
        assert.deepEqual(keys(version, 'm.room.member', CAROL, BOB, { membership }), [
          ...create,
          'm.room.power_levels|',
          `m.room.member|${BOB}`,
          `m.room.member|${CAROL}`,
          'm.room.join_rules|',
        ]);
      }
      for (const membership of ['leave', 'ban']) {
        assert.deepEqual(keys(version, 'm.room.member', CAROL, BOB, { membership }), [
          ...create,
          'm.room.power_levels|',
          `m.room.member|${BOB}`,
          `m.room.member|${CAROL}`,
        ]);
      }
      // Sender and target the same: listed once.
      assert.deepEqual(keys(version, 'm.room.member', BOB, BOB, { membership: 'leave' }), [
        ...create,
        'm.room.power_levels|',
        `m.room.member|${BOB}`,
      ]);
    });

    test(`v${v} auth_events.selection: a third-party invite adds the m.room.third_party_invite named by its token`, () => {
      const content = { membership: 'invite', third_party_invite: { display_name: 'x', signed: { mxid: CAROL, token: 'tok' } } };
      assert.ok(keys(version, 'm.room.member', CAROL, BOB, content).includes('m.room.third_party_invite|tok'));
      const joinContent = { ...content, membership: 'join' };
      assert.ok(!keys(version, 'm.room.member', CAROL, CAROL, joinContent).some((k) => k.startsWith('m.room.third_party_invite')));
    });

    const since = version.restrictedJoins ? '' : '(not before v8)';
    test(`v${v} auth_events.selection: join_authorised_via_users_server adds the authoriser's membership ${since}`, () => {
      const content = { membership: 'join', join_authorised_via_users_server: MOD };
      assert.equal(keys(version, 'm.room.member', CAROL, CAROL, content).includes(`m.room.member|${MOD}`), version.restrictedJoins);
      const leave = { membership: 'leave', join_authorised_via_users_server: MOD };
      assert.ok(!keys(version, 'm.room.member', CAROL, CAROL, leave).includes(`m.room.member|${MOD}`));
    });

    test(`v${v} auth_events.selection: what the selection picks from state passes rule 3`, () => {
      const room = standardRoom(version, { joinRule: version.restrictedJoins ? 'restricted' : 'public' });
      room.member(CAROL, 'invite', { sender: ALICE });
      const content: JsonObject = { membership: 'join', ...(version.restrictedJoins ? { join_authorised_via_users_server: MOD } : {}) };
      const byKey = new Map([...room.state].map(([k, e]) => [k, e.eventId]));
      const ids = selectAuthEventIds('m.room.member', CAROL, CAROL, content, version, byKey);
      const join = room.build({ type: 'm.room.member', sender: CAROL, stateKey: CAROL, content, authEvents: ids });
      const authEvents = ids.map((id) => room.events.find((e) => e.eventId === id)!);
      assertAllowed(checkAuthEventsList(join, authEvents, version));
      assert.equal(ids.includes(room.create.eventId), !version.roomIdFromCreateEvent);
      assert.ok(ids.includes(room.state.get(stateKey('m.room.join_rules', ''))!.eventId));
    });
  }

  for (const version of versions(12)) {
    test(`v${n(version)} auth_events.selection: the create event is never selected`, () => {
      assert.ok(!authEventKeysFor('m.room.message', undefined, BOB, {}, version).includes(stateKey('m.room.create', '')));
    });
  }
});
