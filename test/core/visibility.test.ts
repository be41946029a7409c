import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RoomEvent } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import {
  effectiveHistoryVisibility,
  filterVisibleEvents,
  historyVisibilityOf,
  isEventVisible,
  type EventStateContext,
} from '../../src/core/visibility.js';
import { TestRoom } from './helpers/events.js';

// Expected values are written out from the five steps of
// S:content/client-server-api/modules/history_visibility.md §Server behaviour.

type M = string | undefined;

describe('effectiveHistoryVisibility', () => {
  test('known values pass; anything else is shared', () => {
    for (const v of ['world_readable', 'shared', 'invited', 'joined'] as const) assert.equal(effectiveHistoryVisibility(v), v);
    for (const v of [undefined, null, '', 'JOINED', 'private', 3, {}]) assert.equal(effectiveHistoryVisibility(v), 'shared');
    assert.equal(historyVisibilityOf(undefined), 'shared');
    assert.equal(historyVisibilityOf({ history_visibility: 'joined' }), 'joined');
    assert.equal(historyVisibilityOf({}), 'shared');
  });
});

describe('isEventVisible: visibility × membership at the event × current membership', () => {
  // [visibility, membership at event, current membership, expected]
  const table: Array<[unknown, M, M, boolean]> = [
    // 1. world_readable: everyone, even users who never had a membership.
    ['world_readable', undefined, undefined, true],
    ['world_readable', 'leave', 'leave', true],
    ['world_readable', 'ban', 'ban', true],
    ['world_readable', undefined, 'join', true],
    ['world_readable', 'knock', 'knock', true],
    // 2. joined at the event: always, whatever the visibility and whatever happened since.
    ['joined', 'join', 'join', true],
    ['joined', 'join', 'leave', true],
    ['joined', 'join', 'ban', true],
    ['invited', 'join', 'leave', true],
    ['shared', 'join', 'leave', true],
    ['shared', 'join', undefined, true],
    // 3. shared: visible once the user has joined since (here: joined now).
    ['shared', undefined, 'join', true],
    ['shared', 'invite', 'join', true],
    ['shared', 'leave', 'join', true],
    ['shared', 'ban', 'join', true],
    ['shared', 'knock', 'join', true],
    ['shared', undefined, 'invite', false],
    ['shared', undefined, 'leave', false],
    ['shared', undefined, undefined, false],
    ['shared', 'invite', 'invite', false],
    ['shared', 'knock', 'knock', false],
    ['shared', 'leave', 'ban', false],
    // Unknown or absent values count as shared.
    [undefined, undefined, 'join', true],
    [undefined, undefined, 'leave', false],
    ['private', undefined, 'join', true],
    ['private', 'invite', 'invite', false],
    [42, undefined, 'join', true],
    // 4. invited: visible if invited (or joined) at the event.
    ['invited', 'invite', 'join', true],
    ['invited', 'invite', 'invite', true],
    ['invited', 'invite', 'leave', true],
    ['invited', undefined, 'join', false],
    ['invited', 'leave', 'join', false],
    ['invited', 'knock', 'join', false],
    ['invited', 'ban', 'join', false],
    // 5. joined: only if joined at the event.
    ['joined', 'invite', 'join', false],
    ['joined', undefined, 'join', false],
    ['joined', 'leave', 'join', false],
    ['joined', 'knock', 'join', false],
    ['joined', 'ban', 'ban', false],
    ['joined', undefined, undefined, false],
  ];
  for (const [visibility, membershipAtEvent, currentMembership, expected] of table) {
    test(`${String(visibility)} / at event ${String(membershipAtEvent)} / now ${String(currentMembership)} → ${expected}`, () => {
      assert.equal(isEventVisible({ visibility, membershipAtEvent, currentMembership }), expected);
    });
  }

  test('joinedSinceEvent overrides the current-membership default', () => {
    // A user who joined after the event and has left again (history served up to their leave).
    assert.equal(
      isEventVisible({ visibility: 'shared', membershipAtEvent: undefined, currentMembership: 'leave', joinedSinceEvent: true }),
      true,
    );
    // A peeking caller can say "not joined since" explicitly.
    assert.equal(
      isEventVisible({ visibility: 'shared', membershipAtEvent: undefined, currentMembership: 'join', joinedSinceEvent: false }),
      false,
    );
    // It never widens joined/invited visibility.
    assert.equal(
      isEventVisible({ visibility: 'joined', membershipAtEvent: undefined, currentMembership: 'leave', joinedSinceEvent: true }),
      false,
    );
  });
});

describe('isEventVisible: boundary events (before OR after)', () => {
  // m.room.history_visibility events: [before, after, membership at event, current, expected]
  const hv: Array<[unknown, unknown, M, M, boolean]> = [
    // The spec's examples: a non-member sees world_readable → joined and joined → world_readable.
    ['world_readable', 'joined', undefined, undefined, true],
    ['joined', 'world_readable', undefined, undefined, true],
    ['joined', 'joined', undefined, undefined, false],
    // shared before or after, for a user who has since joined.
    ['shared', 'joined', undefined, 'join', true],
    ['joined', 'shared', undefined, 'join', true],
    ['shared', 'joined', undefined, 'leave', false],
    // No previous event: "before" is shared.
    [undefined, 'joined', undefined, 'join', true],
    [undefined, 'joined', undefined, 'leave', false],
    // invited before, user invited at the event (Synapse hides this one; the spec allows it).
    ['invited', 'joined', 'invite', 'invite', true],
    ['joined', 'invited', 'invite', 'invite', true],
    ['joined', 'invited', 'knock', 'join', false],
  ];
  for (const [before, after, membershipAtEvent, currentMembership, expected] of hv) {
    const change = `${String(before)} → ${String(after)}`;
    test(`history_visibility ${change} / at event ${membershipAtEvent} / now ${currentMembership} → ${expected}`, () => {
      assert.equal(isEventVisible({ visibility: after, membershipAtEvent, currentMembership, before: { visibility: before } }), expected);
    });
  }

  // The user's own m.room.member events: [visibility, before, after, current, expected]
  const own: Array<[unknown, M, M, M, boolean]> = [
    // Their join is always visible, even with joined visibility.
    ['joined', undefined, 'join', 'join', true],
    ['joined', 'invite', 'join', 'join', true],
    // Leaving after being joined: before allows it.
    ['joined', 'join', 'leave', 'leave', true],
    ['joined', 'join', 'ban', 'ban', true],
    // Rejecting an invite: always shown (Synapse), whatever the visibility.
    ['joined', 'invite', 'leave', 'leave', true],
    ['invited', 'invite', 'leave', 'leave', true],
    // Being invited: visible under invited (after), not under joined.
    ['invited', undefined, 'invite', 'invite', true],
    ['joined', undefined, 'invite', 'invite', false],
    ['joined', 'leave', 'invite', 'invite', false],
    // Banned after an invite: the invite side counts only under invited (or shared + joined since).
    ['invited', 'invite', 'ban', 'ban', true],
    ['joined', 'invite', 'ban', 'ban', false],
    // A knock and its withdrawal under joined visibility stay hidden (neither side is join).
    ['joined', undefined, 'knock', 'knock', false],
    ['joined', 'knock', 'leave', 'leave', false],
    // Under shared, a user now joined sees all their earlier membership changes.
    ['shared', undefined, 'knock', 'join', true],
  ];
  for (const [visibility, before, after, currentMembership, expected] of own) {
    test(`own member ${before} → ${after} under ${String(visibility)} / now ${currentMembership} → ${expected}`, () => {
      assert.equal(isEventVisible({ visibility, membershipAtEvent: after, currentMembership, before: { membership: before } }), expected);
    });
  }
});

describe('filterVisibleEvents', () => {
  const ALICE = '@alice:a.test';
  const BOB = '@bob:b.test';
  const version = getRoomVersion('11')!;

  /** Walks a TestRoom's events keeping the state after each, as a caller would look it up. */
  function contexts(room: TestRoom, userId: string): Map<string, EventStateContext> {
    const map = new Map<string, EventStateContext>();
    let visibility: unknown;
    let membership: string | undefined;
    const prev = new Map<string, JsonObject>();
    for (const event of room.events) {
      let prevContent: JsonObject | undefined;
      if (event.stateKey !== undefined) {
        const key = `${event.type}|${event.stateKey}`;
        prevContent = prev.get(key);
        prev.set(key, event.content);
        if (event.type === 'm.room.history_visibility') visibility = event.content.history_visibility;
        if (event.type === 'm.room.member' && event.stateKey === userId) {
          membership = event.content.membership as string;
        }
      }
      map.set(event.eventId, { historyVisibility: visibility, membership, prevContent });
    }
    return map;
  }

  function build(): { room: TestRoom; ids: Record<string, string> } {
    const room = new TestRoom(version, ALICE);
    const ids: Record<string, string> = {};
    const add = (name: string, e: RoomEvent) => {
      room.add(e);
      ids[name] = e.eventId;
    };
    add('aliceJoin', room.build({ type: 'm.room.member', sender: ALICE, stateKey: ALICE, content: { membership: 'join' } }));
    add(
      'hvJoined',
      room.build({ type: 'm.room.history_visibility', sender: ALICE, stateKey: '', content: { history_visibility: 'joined' } }),
    );
    add('early', room.build({ type: 'm.room.message', sender: ALICE, content: { body: 'before bob' } }));
    add('bobInvite', room.build({ type: 'm.room.member', sender: ALICE, stateKey: BOB, content: { membership: 'invite' } }));
    add('whileInvited', room.build({ type: 'm.room.message', sender: ALICE, content: { body: 'bob invited' } }));
    add('bobJoin', room.build({ type: 'm.room.member', sender: BOB, stateKey: BOB, content: { membership: 'join' } }));
    add('whileJoined', room.build({ type: 'm.room.message', sender: ALICE, content: { body: 'bob here' } }));
    add('dummy', room.build({ type: 'org.matrix.dummy_event', sender: ALICE, content: {} }));
    add('aliases', room.build({ type: 'm.room.aliases', sender: ALICE, stateKey: 'a.test', content: { aliases: [] } }));
    add('bobLeave', room.build({ type: 'm.room.member', sender: BOB, stateKey: BOB, content: { membership: 'leave' } }));
    add('afterLeave', room.build({ type: 'm.room.message', sender: ALICE, content: { body: 'bob gone' } }));
    add(
      'hvShared',
      room.build({ type: 'm.room.history_visibility', sender: ALICE, stateKey: '', content: { history_visibility: 'shared' } }),
    );
    add('sharedMsg', room.build({ type: 'm.room.message', sender: ALICE, content: { body: 'shared' } }));
    return { room, ids };
  }

  test('joined history for a user who joined then left', () => {
    const { room, ids } = build();
    const ctx = contexts(room, BOB);
    const visible = filterVisibleEvents(BOB, room.events, (e) => ctx.get(e.eventId), { currentMembership: 'leave' });
    const names = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));
    assert.deepEqual(
      visible.map((v) => names[v.event.eventId]),
      ['bobJoin', 'whileJoined', 'bobLeave'],
    );
    // unsigned.membership: the user's membership after each event.
    assert.deepEqual(
      visible.map((v) => v.membership),
      ['join', 'join', 'leave'],
    );
  });

  test('a user who is joined now sees shared history they were not there for', () => {
    const { room, ids } = build();
    const ctx = contexts(room, BOB);
    const visible = filterVisibleEvents(BOB, room.events, (e) => ctx.get(e.eventId), {
      currentMembership: 'join',
    }).map((v) => v.event.eventId);
    // hvShared changes joined → shared: visible via "after"; sharedMsg: shared + joined now.
    assert.ok(visible.includes(ids.hvShared!));
    assert.ok(visible.includes(ids.sharedMsg!));
    // Events under `joined` before Bob joined stay hidden.
    assert.ok(!visible.includes(ids.early!));
    assert.ok(!visible.includes(ids.whileInvited!));
    assert.ok(!visible.includes(ids.bobInvite!));
    // Create event and Alice's join: no history_visibility yet → shared → visible to a joined user.
    assert.ok(visible.includes(room.create.eventId));
    assert.ok(visible.includes(ids.aliceJoin!));
    // Dummy events and m.room.aliases never reach clients.
    assert.ok(!visible.includes(ids.dummy!));
    assert.ok(!visible.includes(ids.aliases!));
  });

  test('non-state events from ignored users are dropped; their state events are kept', () => {
    const { room, ids } = build();
    const ctx = contexts(room, ALICE);
    const visible = filterVisibleEvents(ALICE, room.events, (e) => ctx.get(e.eventId), {
      currentMembership: 'join',
      ignoredUsers: new Set([ALICE]),
    }).map((v) => v.event.eventId);
    assert.ok(!visible.includes(ids.early!));
    assert.ok(visible.includes(ids.hvJoined!));
    assert.ok(visible.includes(ids.aliceJoin!));
  });

  test("events without state (outliers): only the user's own membership survives", () => {
    const { room, ids } = build();
    const visible = filterVisibleEvents(BOB, room.events, () => undefined, { currentMembership: 'invite' });
    assert.deepEqual(
      visible.map((v) => [v.event.eventId, v.membership]),
      [
        [ids.bobInvite, 'invite'],
        [ids.bobJoin, 'join'],
        [ids.bobLeave, 'leave'],
      ],
    );
  });
});
