// Checks shared by the per-user and ephemeral endpoints.

import { serverNameOf } from '../../core/identifiers.js';
import { Errors } from '../../errors.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { Requester } from '../kernel/requester.js';

/** Only the user themself may act on their typing, receipts, account data, presence and filters. */
export function requireSelf(requester: Requester, userId: string, message: string): void {
  if (requester.userId !== userId) throw Errors.forbidden(message);
}

export function isLocalUser(userId: string, serverName: string): boolean {
  return serverNameOf(userId) === serverName;
}

/**
 * The user must be joined to the room. An unknown room answers the same 403 as a room the user is
 * not in, so the endpoint does not reveal which rooms exist.
 */
export async function requireJoined(roomState: RoomStateReader, roomId: string, userId: string): Promise<void> {
  if ((await roomState.membership(roomId, userId)) !== 'join') throw Errors.forbidden(`${userId} is not in room ${roomId}`);
}
