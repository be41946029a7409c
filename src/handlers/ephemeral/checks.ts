// Checks shared by the per-user and ephemeral endpoints.

import { serverNameOf } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { RoomStateReader } from '../room-state.js';
import type { Requester } from '../requester.js';

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

type JsonKind = 'string' | 'boolean' | 'number' | 'object';
type JsonOfKind<K extends JsonKind> = K extends 'string' ? string : K extends 'boolean' ? boolean : K extends 'number' ? number : JsonObject;

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A body field that may be absent; present with the wrong JSON type → 400 M_BAD_JSON. */
export function optionalField<K extends JsonKind>(body: JsonObject, key: string, kind: K): JsonOfKind<K> | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (kindOf(value) !== kind) throw Errors.badJson(`'${key}' must be a${kind === 'object' ? 'n' : ''} ${kind}`);
  return value as JsonOfKind<K>;
}

/** A body field that must be present (400 M_MISSING_PARAM) with its JSON type (400 M_BAD_JSON). */
export function requiredField<K extends JsonKind>(body: JsonObject, key: string, kind: K): JsonOfKind<K> {
  const value = optionalField(body, key, kind);
  if (value === undefined) throw Errors.missingParam(`Missing '${key}'`);
  return value;
}
