import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_HEROES,
  computeHeroes,
  computeRoomSummary,
  hasCanonicalAlias,
  hasRoomName,
  type SummaryMember,
} from '../../src/core/room-summary.js';

const ME = '@me:a.test';
const m = (name: string, membership: string, streamPos: number): SummaryMember => ({
  userId: `@${name}:a.test`,
  membership,
  streamPos,
});

describe('computeRoomSummary', () => {
  test('counts joined (including me) and invited members', () => {
    const members = [
      m('me', 'join', 1),
      m('a', 'join', 2),
      m('b', 'invite', 3),
      m('c', 'invite', 4),
      m('d', 'leave', 5),
      m('e', 'ban', 6),
      m('f', 'knock', 7),
    ];
    const summary = computeRoomSummary(members, ME, false, false);
    assert.equal(summary['m.joined_member_count'], 2);
    assert.equal(summary['m.invited_member_count'], 2);
    assert.deepEqual(summary['m.heroes'], ['@a:a.test', '@b:a.test', '@c:a.test']);
  });

  test('no heroes when the room has a name or a canonical alias', () => {
    const members = [m('me', 'join', 1), m('a', 'join', 2)];
    for (const [hasName, hasAlias] of [
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const summary = computeRoomSummary(members, ME, hasName, hasAlias);
      assert.ok(!('m.heroes' in summary));
      assert.equal(summary['m.joined_member_count'], 2);
      assert.equal(summary['m.invited_member_count'], 0);
    }
  });

  test('alone in the room: an empty hero list is still sent', () => {
    assert.deepEqual(computeRoomSummary([m('me', 'join', 1)], ME, false, false), {
      'm.heroes': [],
      'm.joined_member_count': 1,
      'm.invited_member_count': 0,
    });
  });

  test('accepts any iterable', () => {
    const set = new Set([m('me', 'join', 1), m('a', 'invite', 2)]);
    assert.deepEqual(computeRoomSummary(set.values(), ME, false, false), {
      'm.heroes': ['@a:a.test'],
      'm.joined_member_count': 1,
      'm.invited_member_count': 1,
    });
  });
});

describe('computeHeroes', () => {
  test('joined members first in stream order, then invited ones, never me', () => {
    const members = [
      m('inv1', 'invite', 1),
      m('j3', 'join', 30),
      m('me', 'join', 2),
      m('j1', 'join', 10),
      m('inv2', 'invite', 5),
      m('j2', 'join', 20),
    ];
    assert.deepEqual(computeHeroes(members, ME), ['@j1:a.test', '@j2:a.test', '@j3:a.test', '@inv1:a.test', '@inv2:a.test']);
  });

  test('at most 5', () => {
    assert.equal(MAX_HEROES, 5);
    const members = Array.from({ length: 9 }, (_, i) => m(`u${i}`, 'join', 100 - i));
    assert.deepEqual(computeHeroes(members, ME), ['@u8:a.test', '@u7:a.test', '@u6:a.test', '@u5:a.test', '@u4:a.test']);
  });

  test('falls back to left then banned users only when nobody else is joined or invited', () => {
    const members = [m('me', 'join', 1), m('b1', 'ban', 2), m('l2', 'leave', 9), m('l1', 'leave', 5), m('k', 'knock', 3)];
    assert.deepEqual(computeHeroes(members, ME), ['@l1:a.test', '@l2:a.test', '@b1:a.test']);
    // One joined member is enough to stop the fallback.
    assert.deepEqual(computeHeroes([...members, m('j', 'join', 50)], ME), ['@j:a.test']);
    // An invited one too.
    assert.deepEqual(computeHeroes([...members, m('i', 'invite', 50)], ME), ['@i:a.test']);
  });

  test('the fallback is capped at 5 as well, and never includes me', () => {
    const members = [
      m('me', 'leave', 0),
      ...Array.from({ length: 4 }, (_, i) => m(`l${i}`, 'leave', i + 1)),
      m('b0', 'ban', 0),
      m('b1', 'ban', 1),
    ];
    assert.deepEqual(computeHeroes(members, ME), ['@l0:a.test', '@l1:a.test', '@l2:a.test', '@l3:a.test', '@b0:a.test']);
  });

  test('knocking members are never heroes', () => {
    assert.deepEqual(computeHeroes([m('me', 'join', 1), m('k', 'knock', 2)], ME), []);
  });

  test('equal stream positions are ordered by user id, so the list is stable', () => {
    assert.deepEqual(computeHeroes([m('b', 'join', 1), m('a', 'join', 1)], ME), ['@a:a.test', '@b:a.test']);
  });
});

describe('hasRoomName / hasCanonicalAlias', () => {
  test('only non-empty strings count', () => {
    assert.equal(hasRoomName({ name: 'Room' }), true);
    assert.equal(hasRoomName({ name: '' }), false);
    assert.equal(hasRoomName({ name: 3 }), false);
    assert.equal(hasRoomName({}), false);
    assert.equal(hasRoomName(undefined), false);
    assert.equal(hasCanonicalAlias({ alias: '#a:a.test' }), true);
    assert.equal(hasCanonicalAlias({ alias: '' }), false);
    assert.equal(hasCanonicalAlias({ alt_aliases: ['#b:a.test'] }), false);
    assert.equal(hasCanonicalAlias(undefined), false);
  });
});
