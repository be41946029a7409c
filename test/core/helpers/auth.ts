// Shared fixtures for the auth-rule tests: a standard room per version, version ranges, and
// assertions that name the rule an event was rejected under.

import assert from 'node:assert/strict';
import type { AuthResult } from '../../../src/core/auth-rules.js';
import type { JsonObject } from '../../../src/core/json.js';
import { ROOM_VERSIONS, type RoomVersion } from '../../../src/core/room-versions.js';
import { TestRoom } from './events.js';

/** The creator: 100 in v1–11 (listed in `users`), infinite in v12 (not listed). */
export const ALICE = '@alice:a.test';
/** A moderator on the creator's server: 50. */
export const MOD = '@mod:a.test';
/** A joined user on another server: 0. */
export const BOB = '@bob:b.test';
/** Not in the room. */
export const CAROL = '@carol:c.test';

export const ALL_VERSIONS: readonly RoomVersion[] = [...ROOM_VERSIONS.values()];

/** The versions whose number is in `[from, to]`, for naming per-version tests. */
export function versions(from: number, to = 12): RoomVersion[] {
  return ALL_VERSIONS.filter((v) => Number(v.id) >= from && Number(v.id) <= to);
}

export function n(version: RoomVersion): number {
  return Number(version.id);
}

/** A power-levels content with the creator at 100 unless creators are privileged (v12). */
export function powerLevelsContent(
  version: RoomVersion,
  users: Record<string, number | string> = {},
  extra: JsonObject = {},
  creator = ALICE,
): JsonObject {
  return {
    users: version.privilegedCreators ? { ...users } : { [creator]: 100, ...users },
    ...extra,
  };
}

export interface StandardRoomOptions {
  joinRule?: string;
  /** Extra users in `users`. */
  users?: Record<string, number | string>;
  /** Extra top-level power-levels properties. */
  levels?: JsonObject;
  additionalCreators?: string[];
  createContent?: JsonObject;
}

/**
 * The creator ALICE joined, a power-levels event (MOD at 50), the join rule (`invite` unless told),
 * then MOD and BOB invited and joined.
 */
export function standardRoom(version: RoomVersion, options: StandardRoomOptions = {}): TestRoom {
  const room = new TestRoom(version, ALICE, {
    ...(options.additionalCreators ? { additionalCreators: options.additionalCreators } : {}),
    ...(options.createContent ? { createContent: options.createContent } : {}),
  });
  room.member(ALICE, 'join');
  room.powerLevels(powerLevelsContent(version, { [MOD]: 50, ...(options.users ?? {}) }, options.levels ?? {}));
  room.joinRules(options.joinRule ?? 'invite');
  for (const user of [MOD, BOB]) {
    room.member(user, 'invite', { sender: ALICE });
    room.member(user, 'join');
  }
  return room;
}

export function assertAllowed(result: AuthResult): void {
  assert.ok(result.allowed, result.allowed ? '' : `rejected by ${result.rule}: ${result.reason}`);
}

export function assertRejected(result: AuthResult, rule: string): void {
  assert.ok(!result.allowed, `expected rejection by ${rule}, but it was allowed`);
  assert.equal(result.rule, rule, `rejected by ${result.rule} (${result.reason}), expected ${rule}`);
}
