// Auth rules other than membership (see auth-rules-member.test.ts): create, room id, the
// auth_events list, m.federate, aliases, sender membership, third-party invites, event power,
// `@` state keys, power-levels changes and redactions. One test per rule and version, named
// `v<N> <rule id>: <what>`.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authStateFromEvents,
  checkAuthEventsList,
  checkEventAuth,
  checkPowerLevelsContent,
  checkRedactionAllowed,
} from '../../src/core/auth-rules.js';
import { stateKey } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { makeCreateEvent, makeEvent, TestRoom } from './helpers/events.js';
import {
  ALICE,
  ALL_VERSIONS,
  BOB,
  CAROL,
  MOD,
  assertAllowed,
  assertRejected,
  n,
  powerLevelsContent,
  standardRoom,
  versions,
} from './helpers/auth.js';

describe('rule 1: m.room.create', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} create: a well-formed create event is allowed`, () => {
      assertAllowed(checkEventAuth(makeCreateEvent(version, ALICE), new Map(), version));
    });

    test(`v${v} create.prev_events: a create event with prev_events is rejected`, () => {
      const create = makeCreateEvent(version, ALICE);
      const withPrev = makeEvent({
        id: create.eventId,
        roomId: create.roomId,
        type: 'm.room.create',
        sender: ALICE,
        stateKey: '',
        content: create.content,
        prevEvents: ['$earlier'],
        omitRoomIdFromPdu: version.roomIdFromCreateEvent,
      });
      assertRejected(checkEventAuth(withPrev, new Map(), version), 'create.prev_events');
    });

    test(`v${v} create.unknown_room_version: an unknown content.room_version is rejected`, () => {
      for (const roomVersion of ['99', 'org.example.unknown', 5]) {
        const create = makeCreateEvent(version, ALICE, { content: { room_version: roomVersion } });
        assertRejected(checkEventAuth(create, new Map(), version), 'create.unknown_room_version');
      }
      const noVersion = makeCreateEvent(version, ALICE);
      delete (noVersion.content as Record<string, unknown>)['room_version'];
      assertAllowed(checkEventAuth(noVersion, new Map(), version));
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} create.room_id_server: the room id must be on the sender's server`, () => {
      const create = makeCreateEvent(version, ALICE, { roomId: '!room:b.test' });
      assertRejected(checkEventAuth(create, new Map(), version), 'create.room_id_server');
    });
  }

  for (const version of versions(12)) {
    test(`v${n(version)} create.has_room_id: a create event carrying room_id is rejected`, () => {
      const create = makeCreateEvent(version, ALICE);
      const withRoomId = makeEvent({
        id: create.eventId,
        roomId: create.roomId,
        type: 'm.room.create',
        sender: ALICE,
        stateKey: '',
        content: create.content,
      });
      assertRejected(checkEventAuth(withRoomId, new Map(), version), 'create.has_room_id');
    });
  }

  for (const version of versions(1, 10)) {
    test(`v${n(version)} create.no_creator: content.creator is required`, () => {
      const create = makeCreateEvent(version, ALICE);
      delete (create.content as Record<string, unknown>)['creator'];
      assertRejected(checkEventAuth(create, new Map(), version), 'create.no_creator');
    });
  }

  for (const version of versions(11)) {
    test(`v${n(version)} create.no_creator: content.creator is not needed`, () => {
      const create = makeCreateEvent(version, ALICE);
      assert.ok(!('creator' in create.content));
      assertAllowed(checkEventAuth(create, new Map(), version));
    });
  }

  for (const version of versions(12)) {
    test(`v${n(version)} create.invalid_additional_creators: must be an array of valid user ids`, () => {
      const bad = ['@bob:b.test', ['bob'], [42], ['@bob'], ['@bob:bad_server!'], [`@${'x'.repeat(260)}:b.test`]];
      for (const additional of bad) {
        const create = makeCreateEvent(version, ALICE, { content: { additional_creators: additional } });
        assertRejected(checkEventAuth(create, new Map(), version), 'create.invalid_additional_creators');
      }
      const good = makeCreateEvent(version, ALICE, { additionalCreators: [BOB, '@carol:c.test:8448', '@dave:[::1]'] });
      assertAllowed(checkEventAuth(good, new Map(), version));
      assertAllowed(checkEventAuth(makeCreateEvent(version, ALICE, { additionalCreators: [] }), new Map(), version));
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} create.invalid_additional_creators: not a rule before v12`, () => {
      const create = makeCreateEvent(version, ALICE, { content: { additional_creators: 'nonsense' } });
      assertAllowed(checkEventAuth(create, new Map(), version));
    });
  }
});

describe('rule 2 (v12): the room id names an accepted create event', () => {
  for (const version of versions(12)) {
    test(`v${n(version)} room_id.not_create_event: an event whose room id is not its create event's is rejected`, () => {
      const room = standardRoom(version);
      const other = new TestRoom(version, ALICE);
      const message = makeEvent({ type: 'm.room.message', sender: BOB, content: {}, roomId: other.roomId });
      assertRejected(checkEventAuth(message, room.state, version), 'room_id.not_create_event');
      const ok = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      assertAllowed(checkEventAuth(ok, room.state, version));
    });

    test(`v${n(version)} room_id.create_rejected: an event in a room whose create event was rejected is rejected`, () => {
      const room = standardRoom(version);
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {}, authEvents: [] });
      const authEvents = authEventsOf(room, message);
      const rejected = new Set([room.createEventId]);
      assertRejected(
        checkAuthEventsList(message, authEvents, version, (id) => rejected.has(id)),
        'room_id.create_rejected',
      );
      assertAllowed(checkAuthEventsList(message, authEvents, version, () => false));
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} auth_events.no_create: with no create event in the auth state the event is rejected`, () => {
      const room = standardRoom(version);
      const state = room.snapshot();
      state.delete(stateKey('m.room.create', ''));
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      assertRejected(checkEventAuth(message, state, version), 'auth_events.no_create');
    });
  }
});

/** The auth events the selection algorithm would pick for `event` from the room's state. */
function authEventsOf(
  room: TestRoom,
  event: { type: string; stateKey: string | undefined; sender: string; content: Record<string, unknown> },
) {
  const keys = [
    ...(room.version.roomIdFromCreateEvent ? [] : [stateKey('m.room.create', '')]),
    stateKey('m.room.power_levels', ''),
    stateKey('m.room.member', event.sender),
  ];
  return keys.map((k) => room.state.get(k)).filter((e) => e !== undefined);
}

describe('rule 3: the auth_events list', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    const setup = () => {
      const room = standardRoom(version);
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      return { room, message, authEvents: authEventsOf(room, message) };
    };

    test(`v${v} auth_events: the selected auth events are accepted`, () => {
      const { message, authEvents } = setup();
      assertAllowed(checkAuthEventsList(message, authEvents, version));
    });

    test(`v${v} auth_events.duplicate: two auth events with the same (type, state_key) are rejected`, () => {
      const { room, message, authEvents } = setup();
      const olderPowerLevels = room.events.find((e) => e.type === 'm.room.power_levels')!;
      const twin = makeEvent({
        type: 'm.room.power_levels',
        sender: ALICE,
        stateKey: '',
        content: olderPowerLevels.content,
        roomId: room.roomId,
      });
      assertRejected(checkAuthEventsList(message, [...authEvents, twin], version), 'auth_events.duplicate');
    });

    test(`v${v} auth_events.unexpected: an auth event the selection would not pick is rejected`, () => {
      const { room, message, authEvents } = setup();
      const joinRules = room.state.get(stateKey('m.room.join_rules', ''))!;
      assertRejected(checkAuthEventsList(message, [...authEvents, joinRules], version), 'auth_events.unexpected');
      const someoneElse = room.state.get(stateKey('m.room.member', MOD))!;
      assertRejected(checkAuthEventsList(message, [...authEvents, someoneElse], version), 'auth_events.unexpected');
      const notState =
        room.events.find((e) => e.stateKey === undefined) ?? room.build({ type: 'm.room.message', sender: BOB, content: {} });
      assertRejected(checkAuthEventsList(message, [...authEvents, notState], version), 'auth_events.unexpected');
    });

    test(`v${v} auth_events.rejected: a rejected auth event is rejected`, () => {
      const { room, message, authEvents } = setup();
      const bobJoin = room.state.get(stateKey('m.room.member', BOB))!;
      assertRejected(
        checkAuthEventsList(message, authEvents, version, (id) => id === bobJoin.eventId),
        'auth_events.rejected',
      );
    });

    test(`v${v} auth_events.other_room: an auth event from another room is rejected`, () => {
      const { room, message, authEvents } = setup();
      const foreign = makeEvent({
        type: 'm.room.power_levels',
        sender: ALICE,
        stateKey: '',
        content: powerLevelsContent(version),
        roomId: '!elsewhere:a.test',
      });
      const withoutPowerLevels = authEvents.filter((e) => e.type !== 'm.room.power_levels');
      assertRejected(checkAuthEventsList(message, [...withoutPowerLevels, foreign], version), 'auth_events.other_room');
      void room;
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} auth_events.no_create: the create event must be listed`, () => {
      const room = standardRoom(version);
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      const withoutCreate = authEventsOf(room, message).filter((e) => e.type !== 'm.room.create');
      assertRejected(checkAuthEventsList(message, withoutCreate, version), 'auth_events.no_create');
    });
  }

  for (const version of versions(12)) {
    test(`v${n(version)} auth_events.create_listed: the create event must not be listed`, () => {
      const room = standardRoom(version);
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      assertRejected(checkAuthEventsList(message, [room.create, ...authEventsOf(room, message)], version), 'auth_events.create_listed');
    });

    test(`v${n(version)} auth_events: the implicit create event makes the auth state complete`, () => {
      const room = standardRoom(version);
      const message = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      const authEvents = authEventsOf(room, message);
      assertAllowed(checkEventAuth(message, authStateFromEvents(authEvents, room.create), version));
      assertRejected(checkEventAuth(message, authStateFromEvents(authEvents), version), 'room_id.not_create_event');
    });
  }
});

describe('rule 4: m.federate', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} federate.disallowed: with m.federate false only the creator's server may send`, () => {
      const room = standardRoom(version, { createContent: { 'm.federate': false } });
      const remote = room.build({ type: 'm.room.message', sender: BOB, content: {} });
      assertRejected(checkEventAuth(remote, room.state, version), 'federate.disallowed');
      const local = room.build({ type: 'm.room.message', sender: MOD, content: {} });
      assertAllowed(checkEventAuth(local, room.state, version));
      const remoteJoin = room.build({ type: 'm.room.member', sender: CAROL, stateKey: CAROL, content: { membership: 'join' } });
      assertRejected(checkEventAuth(remoteJoin, room.state, version), 'federate.disallowed');
    });

    test(`v${v} federate.disallowed: m.federate true or absent lets other servers send`, () => {
      for (const createContent of [{ 'm.federate': true }, {}] as JsonObject[]) {
        const room = standardRoom(version, { createContent });
        const remote = room.build({ type: 'm.room.message', sender: BOB, content: {} });
        assertAllowed(checkEventAuth(remote, room.state, version));
      }
    });
  }
});

describe('v1–5 rule 4: m.room.aliases', () => {
  for (const version of versions(1, 5)) {
    const v = n(version);
    test(`v${v} aliases: a server may set aliases under its own name, joined or not`, () => {
      const room = standardRoom(version);
      const aliases = room.build({ type: 'm.room.aliases', sender: CAROL, stateKey: 'c.test', content: { aliases: ['#x:c.test'] } });
      assertAllowed(checkEventAuth(aliases, room.state, version));
    });

    test(`v${v} aliases.state_key_not_sender_server: the state key must be the sender's server`, () => {
      const room = standardRoom(version);
      const aliases = room.build({ type: 'm.room.aliases', sender: ALICE, stateKey: 'b.test', content: { aliases: [] } });
      assertRejected(checkEventAuth(aliases, room.state, version), 'aliases.state_key_not_sender_server');
      const empty = room.build({ type: 'm.room.aliases', sender: ALICE, stateKey: '', content: { aliases: [] } });
      assertRejected(checkEventAuth(empty, room.state, version), 'aliases.state_key_not_sender_server');
    });

    test(`v${v} aliases.no_state_key: m.room.aliases must be a state event`, () => {
      const room = standardRoom(version);
      const aliases = room.build({ type: 'm.room.aliases', sender: ALICE, content: { aliases: [] } });
      assertRejected(checkEventAuth(aliases, room.state, version), 'aliases.no_state_key');
    });
  }

  for (const version of versions(6)) {
    const v = n(version);
    test(`v${v} aliases: m.room.aliases is an ordinary state event`, () => {
      const room = standardRoom(version);
      const outsider = room.build({ type: 'm.room.aliases', sender: CAROL, stateKey: 'c.test', content: { aliases: [] } });
      assertRejected(checkEventAuth(outsider, room.state, version), 'sender.not_joined');
      const lowPower = room.build({ type: 'm.room.aliases', sender: BOB, stateKey: 'b.test', content: { aliases: [] } });
      assertRejected(checkEventAuth(lowPower, room.state, version), 'event.insufficient_power');
      const otherServer = room.build({ type: 'm.room.aliases', sender: MOD, stateKey: 'elsewhere.test', content: { aliases: [] } });
      assertAllowed(checkEventAuth(otherServer, room.state, version));
    });
  }
});

describe('rule 6: the sender must be joined', () => {
  for (const version of ALL_VERSIONS) {
    test(`v${n(version)} sender.not_joined: non-members, invitees and leavers cannot send`, () => {
      const room = standardRoom(version);
      const outsider = room.build({ type: 'm.room.message', sender: CAROL, content: {} });
      assertRejected(checkEventAuth(outsider, room.state, version), 'sender.not_joined');
      room.member(CAROL, 'invite', { sender: ALICE });
      assertRejected(
        checkEventAuth(room.build({ type: 'm.room.message', sender: CAROL, content: {} }), room.state, version),
        'sender.not_joined',
      );
      room.member(BOB, 'leave');
      assertRejected(
        checkEventAuth(room.build({ type: 'm.room.message', sender: BOB, content: {} }), room.state, version),
        'sender.not_joined',
      );
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.message', sender: MOD, content: {} }), room.state, version));
    });
  }
});

describe('rule 7: m.room.third_party_invite', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} third_party_invite.insufficient_power: needs the invite level`, () => {
      const room = standardRoom(version, { levels: { invite: 10 } });
      const invite = room.build({ type: 'm.room.third_party_invite', sender: BOB, stateKey: 'tok', content: { public_key: 'x' } });
      assertRejected(checkEventAuth(invite, room.state, version), 'third_party_invite.insufficient_power');
    });

    test(`v${v} third_party_invite: the invite level is enough, whatever events says`, () => {
      const room = standardRoom(version, { levels: { events: { 'm.room.third_party_invite': 100 } } });
      const invite = room.build({ type: 'm.room.third_party_invite', sender: BOB, stateKey: 'tok', content: { public_key: 'x' } });
      assertAllowed(checkEventAuth(invite, room.state, version));
    });
  }
});

describe('rule 8: the required power level', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} event.insufficient_power: state needs state_default, messages events_default, events overrides both`, () => {
      const room = standardRoom(version, { levels: { events: { 'm.room.topic': 0, 'm.reaction': 10 } } });
      const name = room.build({ type: 'm.room.name', sender: BOB, stateKey: '', content: { name: 'x' } });
      assertRejected(checkEventAuth(name, room.state, version), 'event.insufficient_power');
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.name', sender: MOD, stateKey: '', content: {} }), room.state, version));
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.topic', sender: BOB, stateKey: '', content: {} }), room.state, version));
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.message', sender: BOB, content: {} }), room.state, version));
      const reaction = room.build({ type: 'm.reaction', sender: BOB, content: {} });
      assertRejected(checkEventAuth(reaction, room.state, version), 'event.insufficient_power');
    });

    test(`v${v} event.insufficient_power: with no power-levels event state needs 50 and the creator has it`, () => {
      const room = new TestRoom(version, ALICE);
      room.member(ALICE, 'join');
      room.send({ type: 'm.room.join_rules', sender: ALICE, stateKey: '', content: { join_rule: 'public' } });
      room.member(BOB, 'join');
      const name = room.build({ type: 'm.room.name', sender: BOB, stateKey: '', content: {} });
      assertRejected(checkEventAuth(name, room.state, version), 'event.insufficient_power');
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.name', sender: ALICE, stateKey: '', content: {} }), room.state, version));
      assertAllowed(checkEventAuth(room.build({ type: 'm.room.message', sender: BOB, content: {} }), room.state, version));
    });
  }
});

describe('rule 9: state keys that are user ids', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} state_key.other_user: a state key starting with @ must be the sender`, () => {
      const room = standardRoom(version, { levels: { state_default: 0 } });
      const others = room.build({ type: 'org.example.state', sender: ALICE, stateKey: BOB, content: {} });
      assertRejected(checkEventAuth(others, room.state, version), 'state_key.other_user');
      const notAUserId = room.build({ type: 'org.example.state', sender: ALICE, stateKey: '@anything', content: {} });
      assertRejected(checkEventAuth(notAUserId, room.state, version), 'state_key.other_user');
      assertAllowed(
        checkEventAuth(room.build({ type: 'org.example.state', sender: BOB, stateKey: BOB, content: {} }), room.state, version),
      );
      assertAllowed(
        checkEventAuth(room.build({ type: 'org.example.state', sender: BOB, stateKey: 'x@y', content: {} }), room.state, version),
      );
    });
  }
});

describe('rule 10: m.room.power_levels', () => {
  const send = (room: TestRoom, sender: string, content: Record<string, unknown>) =>
    checkEventAuth(room.build({ type: 'm.room.power_levels', sender, stateKey: '', content: content as never }), room.state, room.version);

  for (const version of ALL_VERSIONS) {
    const v = n(version);
    const stringyOk = v <= 9;
    const floatsOk = v <= 5;

    test(`v${v} power_levels.invalid_level: string levels are ${stringyOk ? 'allowed' : 'rejected'}`, () => {
      const room = standardRoom(version);
      const r = send(room, ALICE, powerLevelsContent(version, { [MOD]: 50 }, { ban: '50', state_default: ' +050 ' }));
      if (stringyOk) assertAllowed(r);
      else assertRejected(r, 'power_levels.invalid_level');
    });

    test(`v${v} power_levels.invalid_users: string user levels are ${stringyOk ? 'allowed' : 'rejected'}`, () => {
      const room = standardRoom(version);
      const r = send(room, ALICE, powerLevelsContent(version, { [MOD]: '50' }));
      if (stringyOk) assertAllowed(r);
      else assertRejected(r, 'power_levels.invalid_users');
    });

    test(`v${v} power_levels.invalid_events: string event levels are ${stringyOk ? 'allowed' : 'rejected'}`, () => {
      const room = standardRoom(version);
      const r = send(room, ALICE, powerLevelsContent(version, { [MOD]: 50 }, { events: { 'm.room.name': '50' } }));
      if (stringyOk) assertAllowed(r);
      else assertRejected(r, 'power_levels.invalid_events');
    });

    test(`v${v} power_levels.invalid_users: float levels are ${floatsOk ? 'allowed (truncated)' : 'rejected'}`, () => {
      const room = standardRoom(version);
      const r = send(room, ALICE, powerLevelsContent(version, { [MOD]: 50, [BOB]: 10.5 }));
      if (floatsOk) assertAllowed(r);
      else assertRejected(r, 'power_levels.invalid_users');
    });

    test(`v${v} power_levels.invalid_users: users must map user ids to levels`, () => {
      const room = standardRoom(version);
      assertRejected(send(room, ALICE, powerLevelsContent(version, { 'not-a-user': 10 })), 'power_levels.invalid_users');
      assertRejected(send(room, ALICE, powerLevelsContent(version, { [MOD]: 'fifty' as never })), 'power_levels.invalid_users');
      assertRejected(send(room, ALICE, { users: [ALICE] }), 'power_levels.invalid_users');
      assertRejected(
        send(room, ALICE, { users: { ...(powerLevelsContent(version).users as object), [BOB]: null } }),
        'power_levels.invalid_users',
      );
    });

    test(`v${v} power_levels.invalid_level: non-level values are rejected`, () => {
      const room = standardRoom(version);
      for (const bad of [true, null, 'abc', [50], { x: 1 }]) {
        assertRejected(send(room, ALICE, powerLevelsContent(version, { [MOD]: 50 }, { kick: bad })), 'power_levels.invalid_level');
      }
      assertRejected(
        send(room, ALICE, powerLevelsContent(version, { [MOD]: 50 }, { events: ['m.room.name'] })),
        'power_levels.invalid_events',
      );
    });

    test(`v${v} power_levels: with no previous power-levels event any well-formed content is allowed`, () => {
      const room = new TestRoom(version, ALICE);
      room.member(ALICE, 'join');
      const r = send(room, ALICE, powerLevelsContent(version, { [BOB]: 1000 }, { ban: 1000, events: { 'm.room.name': 1000 } }));
      assertAllowed(r);
    });

    test(`v${v} power_levels.property.above_sender: a change to a level above the sender is rejected`, () => {
      const room = standardRoom(version, { levels: { state_default: 50, events: { 'm.room.power_levels': 50 } } });
      const base = () => powerLevelsContent(version, { [MOD]: 50 }, { state_default: 50, events: { 'm.room.power_levels': 50 } });
      // New value above the sender.
      assertRejected(send(room, MOD, { ...base(), ban: 60 }), 'power_levels.property.above_sender');
      // New value at the sender's level is fine; so is lowering.
      assertAllowed(send(room, MOD, { ...base(), ban: 50 }));
      assertAllowed(send(room, MOD, { ...base(), kick: 10 }));
      // Numerically equal is no change.
      assertAllowed(send(room, MOD, { ...base(), ban: 50, kick: 50, redact: 50, invite: 0 }));
      // Current value above the sender: can be neither changed nor removed.
      room.powerLevels(
        powerLevelsContent(version, { [MOD]: 50 }, { state_default: 50, redact: 75, events: { 'm.room.power_levels': 50 } }),
      );
      assertRejected(send(room, MOD, { ...base(), redact: 50 }), 'power_levels.property.above_sender');
      assertRejected(send(room, MOD, base()), 'power_levels.property.above_sender');
      assertAllowed(send(room, MOD, { ...base(), redact: 75 }));
    });

    test(`v${v} power_levels.events.above_sender: events entries above the sender cannot be added, changed or removed`, () => {
      const events = { 'm.room.power_levels': 50, 'm.room.tombstone': 100 };
      const room = standardRoom(version, { levels: { events } });
      const content = (e: Record<string, number>) => powerLevelsContent(version, { [MOD]: 50 }, { events: e });
      assertRejected(send(room, MOD, content({ ...events, 'm.room.name': 60 })), 'power_levels.events.above_sender');
      assertRejected(send(room, MOD, content({ ...events, 'm.room.tombstone': 50 })), 'power_levels.events.above_sender');
      assertRejected(send(room, MOD, content({ 'm.room.power_levels': 50 })), 'power_levels.events.above_sender');
      assertAllowed(send(room, MOD, content({ ...events, 'm.room.name': 50 })));
    });

    if (version.limitNotificationsPowerLevels) {
      test(`v${v} power_levels.notifications.above_sender: notifications entries above the sender are rejected`, () => {
        const room = standardRoom(version, { levels: { events: { 'm.room.power_levels': 50 }, notifications: { room: 50 } } });
        const content = (room_: number) =>
          powerLevelsContent(version, { [MOD]: 50 }, { events: { 'm.room.power_levels': 50 }, notifications: { room: room_ } });
        assertRejected(send(room, MOD, content(60)), 'power_levels.notifications.above_sender');
        assertAllowed(send(room, MOD, content(20)));
      });
    } else {
      test(`v${v} power_levels.notifications.above_sender: notifications are not checked before v6`, () => {
        const room = standardRoom(version, { levels: { events: { 'm.room.power_levels': 50 }, notifications: { room: 50 } } });
        const content = powerLevelsContent(version, { [MOD]: 50 }, { events: { 'm.room.power_levels': 50 }, notifications: { room: 100 } });
        assertAllowed(send(room, MOD, content));
      });
    }

    test(`v${v} power_levels.users.not_below_sender: users at or above the sender cannot be changed, except the sender`, () => {
      const events = { 'm.room.power_levels': 50 };
      const room = standardRoom(version, { users: { '@mod2:a.test': 50 }, levels: { events } });
      const content = (users: Record<string, number>) => powerLevelsContent(version, users, { events });
      assertRejected(send(room, MOD, content({ [MOD]: 50, '@mod2:a.test': 10 })), 'power_levels.users.not_below_sender');
      assertRejected(send(room, MOD, content({ [MOD]: 50 })), 'power_levels.users.not_below_sender');
      // Demoting yourself is fine.
      assertAllowed(send(room, MOD, content({ [MOD]: 10, '@mod2:a.test': 50 })));
      // A user below the sender can be changed and removed.
      room.powerLevels(powerLevelsContent(version, { [MOD]: 50, [BOB]: 20 }, { events }));
      assertAllowed(send(room, MOD, content({ [MOD]: 50, [BOB]: 40 })));
      assertAllowed(send(room, MOD, content({ [MOD]: 50 })));
    });

    test(`v${v} power_levels.users.above_sender: new user levels are capped at the sender's level`, () => {
      const events = { 'm.room.power_levels': 50 };
      const room = standardRoom(version, { levels: { events } });
      const content = (users: Record<string, number>) => powerLevelsContent(version, users, { events });
      assertRejected(send(room, MOD, content({ [MOD]: 50, [BOB]: 51 })), 'power_levels.users.above_sender');
      assertRejected(send(room, MOD, content({ [MOD]: 75 })), 'power_levels.users.above_sender');
      assertAllowed(send(room, MOD, content({ [MOD]: 50, [BOB]: 50 })));
    });
  }

  for (const version of versions(12)) {
    const v = n(version);
    test(`v${v} power_levels.users.creator: creators must not be listed in users`, () => {
      const room = standardRoom(version, { additionalCreators: [CAROL] });
      assertRejected(send(room, ALICE, { users: { [ALICE]: 100 } }), 'power_levels.users.creator');
      assertRejected(send(room, ALICE, { users: { [CAROL]: 100 } }), 'power_levels.users.creator');
      assertAllowed(send(room, ALICE, { users: { [MOD]: 50 } }));
    });

    test(`v${v} power_levels: a creator's infinite power allows any level`, () => {
      const room = standardRoom(version, { levels: { ban: 1000 } });
      assertAllowed(send(room, ALICE, { users: { [MOD]: 5000 }, ban: 999_999 }));
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} power_levels.users.creator: creators may be listed before v12`, () => {
      const room = standardRoom(version);
      assertAllowed(send(room, ALICE, { users: { [ALICE]: 100 } }));
    });
  }

  test('checkPowerLevelsContent is usable on its own', () => {
    const v10 = versions(10, 10)[0]!;
    assertAllowed(checkPowerLevelsContent({ users: { [ALICE]: 100 }, ban: 50 }, v10));
    assertRejected(checkPowerLevelsContent({ ban: '50' }, v10), 'power_levels.invalid_level');
  });
});

describe('redactions', () => {
  for (const version of versions(1, 2)) {
    const v = n(version);
    test(`v${v} redaction.insufficient_power: below the redact level only same-server event ids may be redacted`, () => {
      const room = standardRoom(version);
      const target = room.send({ id: '$target:a.test', type: 'm.room.message', sender: MOD, content: {} });
      const byBob = room.build({ id: '$redaction:b.test', type: 'm.room.redaction', sender: BOB, redacts: target.eventId, content: {} });
      assertRejected(checkEventAuth(byBob, room.state, version), 'redaction.insufficient_power');
      const bobsOwn = room.send({ id: '$mine:b.test', type: 'm.room.message', sender: BOB, content: {} });
      const ownRedaction = room.build({ id: '$r2:b.test', type: 'm.room.redaction', sender: BOB, redacts: bobsOwn.eventId, content: {} });
      assertAllowed(checkEventAuth(ownRedaction, room.state, version));
      const byMod = room.build({ id: '$r3:a.test', type: 'm.room.redaction', sender: MOD, redacts: '$x:b.test', content: {} });
      assertAllowed(checkEventAuth(byMod, room.state, version));
    });
  }

  for (const version of versions(3)) {
    const v = n(version);
    const redaction = (room: TestRoom, sender: string, redacts: string) =>
      room.build({
        type: 'm.room.redaction',
        sender,
        ...(version.redactsInContent ? { content: { redacts } } : { redacts, content: {} }),
      });

    test(`v${v} redaction.insufficient_power: the auth rules do not consider the redact level`, () => {
      const room = standardRoom(version);
      const target = room.send({ type: 'm.room.message', sender: MOD, content: {} });
      assertAllowed(checkEventAuth(redaction(room, BOB, target.eventId), room.state, version));
    });

    test(`v${v} event.insufficient_power: events can still restrict m.room.redaction`, () => {
      const room = standardRoom(version, { levels: { events: { 'm.room.redaction': 50 } } });
      const target = room.send({ type: 'm.room.message', sender: BOB, content: {} });
      assertRejected(checkEventAuth(redaction(room, BOB, target.eventId), room.state, version), 'event.insufficient_power');
    });

    test(`v${v} redaction.insufficient_power: applying needs the redact level or the same sender server`, () => {
      const room = standardRoom(version);
      const modMessage = room.send({ type: 'm.room.message', sender: MOD, content: {} });
      const bobMessage = room.send({ type: 'm.room.message', sender: BOB, content: {} });
      const otherBobServerUser = room.send({ type: 'm.room.message', sender: '@bob2:b.test', content: {} });
      const byBob = (target: string) => redaction(room, BOB, target);
      assertRejected(checkRedactionAllowed(byBob(modMessage.eventId), modMessage, room.state, version), 'redaction.insufficient_power');
      assertAllowed(checkRedactionAllowed(byBob(bobMessage.eventId), bobMessage, room.state, version));
      assertAllowed(checkRedactionAllowed(byBob(otherBobServerUser.eventId), otherBobServerUser, room.state, version));
      assertAllowed(checkRedactionAllowed(redaction(room, MOD, bobMessage.eventId), bobMessage, room.state, version));
    });
  }

  for (const version of ALL_VERSIONS) {
    test(`v${n(version)} redaction.other_room: a redaction cannot touch another room's event`, () => {
      const room = standardRoom(version);
      const elsewhere = makeEvent({ type: 'm.room.message', sender: BOB, content: {}, roomId: '!other:b.test' });
      const r = room.build({
        type: 'm.room.redaction',
        sender: ALICE,
        redacts: elsewhere.eventId,
        content: { redacts: elsewhere.eventId },
      });
      assertRejected(checkRedactionAllowed(r, elsewhere, room.state, version), 'redaction.other_room');
    });
  }
});
