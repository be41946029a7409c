// Rooms for tests, made straight through the events writer (no HTTP round trips), and recording
// what is published on the bus; and many rooms created at once through any way in.

import assert from 'node:assert/strict';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { buildCreateEvent } from '../../src/handlers/kernel/events-writer.js';
import type { StreamUpdate } from '../../src/streams/bus.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';

let lastCreateTs = 0;
/** A create event timestamp later than the previous one: in v12 two equal ones would be one room. */
function nextCreateTs(): number {
  lastCreateTs = Math.max(Date.now(), lastCreateTs + 1);
  return lastCreateTs;
}

/** Creates a v12 room with `creator` and `members` joined (with their localparts as display names). */
export async function createRoomWith(
  hs: TestHomeserver,
  creator: TestUser,
  members: readonly TestUser[] = [],
  extraPowerLevels: Record<string, unknown> = {},
): Promise<string> {
  const { services } = hs.homeserver;
  const create = buildCreateEvent(
    { version: getRoomVersion('12')!, creator: creator.userId, content: {}, now: nextCreateTs() },
    services.serverName,
    services.signingKey,
  );
  const { roomId } = await services.eventsWriter.createRoom({
    roomVersion: '12',
    creator: creator.userId,
    createEvent: create.pdu,
    initialEvents: [
      {
        type: 'm.room.member',
        stateKey: creator.userId,
        sender: creator.userId,
        content: { membership: 'join', displayname: localpart(creator.userId) },
      },
      { type: 'm.room.power_levels', stateKey: '', sender: creator.userId, content: { ...extraPowerLevels } as never },
      { type: 'm.room.join_rules', stateKey: '', sender: creator.userId, content: { join_rule: 'public' } },
    ],
    isPublic: false,
    aliases: [],
  });
  for (const member of members) await join(hs, roomId, member);
  return roomId;
}

export async function join(hs: TestHomeserver, roomId: string, user: TestUser): Promise<void> {
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: user.userId,
    sender: user.userId,
    content: { membership: 'join', displayname: localpart(user.userId) },
  });
}

export async function leave(hs: TestHomeserver, roomId: string, user: TestUser): Promise<void> {
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: user.userId,
    sender: user.userId,
    content: { membership: 'leave' },
  });
}

export async function sendText(
  hs: TestHomeserver,
  roomId: string,
  sender: TestUser,
  body: string,
  extra: Record<string, unknown> = {},
): Promise<{ eventId: string; streamOrdering: number }> {
  return hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.message',
    sender: sender.userId,
    content: { msgtype: 'm.text', body, ...extra },
  });
}

function localpart(userId: string): string {
  return userId.slice(1, userId.indexOf(':'));
}

/** Records every update published on the bus from now on. */
export function recordBus(hs: TestHomeserver): { updates: StreamUpdate[]; stop: () => void } {
  const updates: StreamUpdate[] = [];
  const stop = hs.homeserver.services.bus.subscribe((update) => updates.push(update));
  return { updates, stop };
}

/**
 * Creates `total` rooms with `create`, `concurrency` requests in flight at a time (as a client
 * creating rooms in bulk does), and asserts that every answer is 200 with a room id of its own.
 * Returns the room ids in request order.
 */
export async function createRoomsConcurrently(
  create: (i: number) => Promise<{ status: number; text: string; json: any }>,
  { total = 100, concurrency = 8 } = {},
): Promise<string[]> {
  const answers: Array<{ status: number; text: string; json: any }> = new Array(total);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < total; i = next++) answers[i] = await create(i);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const refused = answers.map((a, i) => ({ i, ...a })).filter((a) => a.status !== 200);
  assert.deepEqual(
    refused.map((a) => `#${a.i}: ${a.status} ${a.text}`),
    [],
    `${refused.length} of ${total} creations were refused`,
  );
  const roomIds = answers.map((a) => a.json.room_id as string);
  assert.equal(new Set(roomIds).size, total, `${total} distinct room ids`);
  return roomIds;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
