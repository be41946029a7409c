import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { stateKey } from '../../src/core/events.js';
import type { JsonValue } from '../../src/core/json.js';
import {
  banLevel,
  creatorsOf,
  inviteLevel,
  kickLevel,
  notificationLevel,
  parsePowerLevels,
  parsePowerLevelValue,
  powerLevelsFromState,
  redactLevel,
  requiredPowerLevelForEvent,
  userPowerLevel,
} from '../../src/core/power-levels.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../src/core/room-versions.js';
import { TestRoom, makeCreateEvent } from './helpers/events.js';

const v = (id: string) => getRoomVersion(id)!;
const ALL = [...ROOM_VERSIONS.values()];
const ALICE = '@alice:a.test';
const BOB = '@bob:b.test';
const CAROL = '@carol:c.test';

describe('parsePowerLevelValue', () => {
  for (const version of ALL) {
    const n = Number(version.id);
    test(`v${n}: integers are levels`, () => {
      assert.equal(parsePowerLevelValue(50, version), 50);
      assert.equal(parsePowerLevelValue(-10, version), -10);
      assert.equal(parsePowerLevelValue(0, version), 0);
    });

    test(`v${n}: strings holding integers are levels only in v1–9`, () => {
      const cases: [string, number][] = [
        ['50', 50],
        [' +050 ', 50],
        ['000100', 100],
        ['-100', -100],
        [' 00100 ', 100],
        ['\t7\n', 7],
      ];
      for (const [raw, expected] of cases) {
        assert.equal(parsePowerLevelValue(raw, version), n <= 9 ? expected : undefined, JSON.stringify(raw));
      }
      for (const bad of ['', ' ', '5.0', '1e3', '+-5', '0x10', 'fifty', '5 0', '++5']) {
        assert.equal(parsePowerLevelValue(bad, version), undefined, JSON.stringify(bad));
      }
    });

    test(`v${n}: floats are truncated only in v1–5`, () => {
      assert.equal(parsePowerLevelValue(50.57, version), n <= 5 ? 50 : undefined);
      assert.equal(parsePowerLevelValue(5.114698e4, version), n <= 5 ? 51146 : undefined);
      assert.equal(parsePowerLevelValue(-0.5, version), n <= 5 ? 0 : undefined);
      assert.equal(parsePowerLevelValue(Infinity, version), undefined);
      assert.equal(parsePowerLevelValue(NaN, version), undefined);
    });

    test(`v${n}: other JSON values are not levels`, () => {
      const bads: JsonValue[] = [null, true, false, [], {}, [50], { level: 50 }];
      for (const bad of bads) {
        assert.equal(parsePowerLevelValue(bad, version), undefined, JSON.stringify(bad));
      }
      assert.equal(parsePowerLevelValue(undefined, version), undefined);
    });
  }
});

describe('defaults', () => {
  for (const version of ALL) {
    const n = Number(version.id);
    test(`v${n}: an empty power-levels content gets the schema defaults`, () => {
      const create = makeCreateEvent(version, ALICE);
      const pl = parsePowerLevels({}, create, version);
      assert.equal(pl.usersDefault, 0);
      assert.equal(pl.eventsDefault, 0);
      assert.equal(pl.stateDefault, 50);
      assert.equal(pl.ban, 50);
      assert.equal(pl.kick, 50);
      assert.equal(pl.redact, 50);
      assert.equal(pl.invite, 0);
      assert.equal(pl.notificationLevel('room'), 50);
      assert.equal(pl.eventLevel('m.room.message', false), 0);
      assert.equal(pl.eventLevel('m.room.name', true), 50);
      // A power-levels event exists, so the creator has no implicit 100 (but v12 creators are infinite).
      assert.equal(pl.userLevel(ALICE), n >= 12 ? Infinity : 0);
      assert.equal(pl.userLevel(BOB), 0);
    });

    test(`v${n}: with no power-levels event the creator has ${n >= 12 ? 'infinite power' : '100'} and state_default is 50`, () => {
      const room = new TestRoom(version, ALICE);
      assert.equal(userPowerLevel(ALICE, room.state, version), n >= 12 ? Infinity : 100);
      assert.equal(userPowerLevel(BOB, room.state, version), 0);
      assert.equal(requiredPowerLevelForEvent('m.room.topic', true, room.state, version), 50);
      assert.equal(requiredPowerLevelForEvent('m.room.message', false, room.state, version), 0);
      assert.equal(banLevel(room.state, version), 50);
      assert.equal(kickLevel(room.state, version), 50);
      assert.equal(redactLevel(room.state, version), 50);
      assert.equal(inviteLevel(room.state, version), 0);
      assert.equal(notificationLevel('room', room.state, version), 50);
      assert.equal(powerLevelsFromState(room.state, version).fromEvent, false);
    });
  }

  test('v1–10: with no power-levels event the creator is content.creator, not the sender', () => {
    for (const id of ['1', '5', '10']) {
      const version = v(id);
      const room = new TestRoom(version, ALICE, { createContent: { creator: BOB } });
      assert.equal(userPowerLevel(BOB, room.state, version), 100, `v${id}`);
      assert.equal(userPowerLevel(ALICE, room.state, version), 0, `v${id}`);
    }
  });

  test('v11: with no power-levels event the creator is the create sender, content.creator is ignored', () => {
    const version = v('11');
    const room = new TestRoom(version, ALICE, { createContent: { creator: BOB } });
    assert.equal(userPowerLevel(ALICE, room.state, version), 100);
    assert.equal(userPowerLevel(BOB, room.state, version), 0);
  });
});

describe('levels from a power-levels event', () => {
  test('explicit values win over defaults, users_default applies to unlisted users', () => {
    const version = v('10');
    const room = new TestRoom(version, ALICE);
    room.powerLevels({
      users: { [ALICE]: 100, [BOB]: 40 },
      users_default: 5,
      events: { 'm.room.name': 30, 'm.room.message': 10 },
      events_default: 1,
      state_default: 60,
      ban: 70,
      kick: 65,
      redact: 20,
      invite: 15,
      notifications: { room: 25 },
    });
    assert.equal(userPowerLevel(ALICE, room.state, version), 100);
    assert.equal(userPowerLevel(BOB, room.state, version), 40);
    assert.equal(userPowerLevel(CAROL, room.state, version), 5);
    assert.equal(requiredPowerLevelForEvent('m.room.name', true, room.state, version), 30);
    assert.equal(requiredPowerLevelForEvent('m.room.message', false, room.state, version), 10);
    assert.equal(requiredPowerLevelForEvent('m.room.topic', true, room.state, version), 60);
    assert.equal(requiredPowerLevelForEvent('m.reaction', false, room.state, version), 1);
    // `events` applies whether or not the event is a state event.
    assert.equal(requiredPowerLevelForEvent('m.room.message', true, room.state, version), 10);
    assert.equal(banLevel(room.state, version), 70);
    assert.equal(kickLevel(room.state, version), 65);
    assert.equal(redactLevel(room.state, version), 20);
    assert.equal(inviteLevel(room.state, version), 15);
    assert.equal(notificationLevel('room', room.state, version), 25);
  });

  test('v1–9: stringy levels are read as integers', () => {
    for (const id of ['1', '6', '9']) {
      const version = v(id);
      const pl = parsePowerLevels(
        { users: { [BOB]: ' +050 ' }, ban: '60', events: { 'm.room.name': '000100' }, state_default: '-1' },
        makeCreateEvent(version, ALICE),
        version,
      );
      assert.equal(pl.userLevel(BOB), 50, `v${id}`);
      assert.equal(pl.ban, 60, `v${id}`);
      assert.equal(pl.eventLevel('m.room.name', true), 100, `v${id}`);
      assert.equal(pl.stateDefault, -1, `v${id}`);
    }
  });

  test('v1–5: floats are truncated; v6+: floats count as absent', () => {
    for (const [id, expected] of [
      ['1', 50],
      ['5', 50],
      ['6', 0],
      ['9', 0],
    ] as const) {
      const version = v(id);
      const pl = parsePowerLevels({ users: { [BOB]: 50.57 } }, makeCreateEvent(version, ALICE), version);
      assert.equal(pl.userLevel(BOB), expected, `v${id}`);
    }
  });

  test('v10+: strings count as absent, so defaults apply', () => {
    for (const id of ['10', '11', '12']) {
      const version = v(id);
      const pl = parsePowerLevels({ users: { [BOB]: '50' }, ban: '10', users_default: '7' }, makeCreateEvent(version, ALICE), version);
      assert.equal(pl.userLevel(BOB), 0, `v${id}`);
      assert.equal(pl.ban, 50, `v${id}`);
    }
  });
});

describe('creators', () => {
  test('creatorsOf: v1–10 content.creator, v11 sender, v12 sender plus additional_creators', () => {
    for (const id of ['1', '10']) {
      const version = v(id);
      const create = makeCreateEvent(version, ALICE, { content: { creator: BOB } });
      assert.deepEqual([...creatorsOf(create, version)], [BOB], `v${id}`);
    }
    const v11 = v('11');
    assert.deepEqual([...creatorsOf(makeCreateEvent(v11, ALICE, { additionalCreators: [BOB] }), v11)], [ALICE]);
    const v12 = v('12');
    assert.deepEqual([...creatorsOf(makeCreateEvent(v12, ALICE, { additionalCreators: [BOB, CAROL] }), v12)], [ALICE, BOB, CAROL]);
  });

  test('v12: creators have infinite power even when the power-levels event names them', () => {
    const version = v('12');
    const room = new TestRoom(version, ALICE, { additionalCreators: [BOB] });
    room.powerLevels({ users: { [ALICE]: 0, [BOB]: 0, [CAROL]: 100 } });
    assert.equal(userPowerLevel(ALICE, room.state, version), Infinity);
    assert.equal(userPowerLevel(BOB, room.state, version), Infinity);
    assert.equal(userPowerLevel(CAROL, room.state, version), 100);
    assert.ok(userPowerLevel(CAROL, room.state, version) < userPowerLevel(BOB, room.state, version));
  });

  test('v11: additional_creators grants nothing', () => {
    const version = v('11');
    const room = new TestRoom(version, ALICE, { additionalCreators: [BOB] });
    assert.equal(userPowerLevel(BOB, room.state, version), 0);
    room.powerLevels({ users: { [ALICE]: 100 } });
    assert.equal(userPowerLevel(ALICE, room.state, version), 100);
  });

  test('no create event in state: nobody is a creator', () => {
    const version = v('12');
    const room = new TestRoom(version, ALICE);
    const state = room.snapshot();
    state.delete(stateKey('m.room.create', ''));
    assert.equal(userPowerLevel(ALICE, state, version), 0);
  });
});
