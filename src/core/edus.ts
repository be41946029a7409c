// The EDUs the spec defines, read from what another server sent (spec: server-server API §EDUs,
// §Typing Notifications, §Presence, §Receipts, §Device Management, §End-to-End Encryption,
// §Send-to-device messaging; schemas in `definitions/event-schemas/m.*.yaml`).
//
// Each parser turns untrusted JSON into a typed value or a typed error and never throws: every
// value is type-checked before use, nothing recurses into what the sender nests, and maps keyed
// by sender-chosen strings are `Map`s (a key such as `__proto__` is then just a key).
//
// The rules that need no I/O are applied here. The main one: an EDU speaks for users of the
// server that sent it, so a user of another server is refused — the whole EDU when it is about one
// user (typing, device list, signing keys, to-device sender), that entry when it lists several
// (receipts, presence). What needs state (is the user in the room, do we share a room, ACLs) is
// the caller's.

import { isValidEventId, isValidRoomId, parseUserId, serverNameOf } from './identifiers.js';
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';

// ---- the typed EDUs ----

export interface TypingEdu {
  readonly type: 'm.typing';
  readonly roomId: string;
  readonly userId: string;
  readonly typing: boolean;
}

export interface ReceiptUpdate {
  readonly roomId: string;
  /** Only `m.read` is federated (private receipts never leave their server). */
  readonly receiptType: 'm.read';
  readonly userId: string;
  /** The event(s) read up to: the schema says exactly one; more are kept as sent. */
  readonly eventIds: readonly string[];
  /** `data` as sent (`ts`, `thread_id`, ...), an empty object when absent. */
  readonly data: JsonObject;
  readonly ts: number | undefined;
  /** A thread root id or `main`; absent (or not a string) means unthreaded. */
  readonly threadId: string | undefined;
}

export interface ReceiptEdu {
  readonly type: 'm.receipt';
  readonly receipts: readonly ReceiptUpdate[];
}

export type PresenceState = 'online' | 'unavailable' | 'offline';

export interface PresenceUpdate {
  readonly userId: string;
  readonly presence: PresenceState;
  /** Milliseconds since the user was last active; the schema requires it, Synapse omits it when unknown. */
  readonly lastActiveAgo: number | undefined;
  readonly currentlyActive: boolean | undefined;
  readonly statusMsg: string | undefined;
}

export interface PresenceEdu {
  readonly type: 'm.presence';
  readonly updates: readonly PresenceUpdate[];
}

export interface DeviceListUpdateEdu {
  readonly type: 'm.device_list_update';
  readonly userId: string;
  readonly deviceId: string;
  readonly deviceDisplayName: string | undefined;
  readonly streamId: number;
  /** The stream ids this update follows; empty for the first of a sequence. */
  readonly prevIds: readonly number[];
  readonly deleted: boolean;
  /** The device's identity keys (`DeviceKeys`), if any. */
  readonly keys: JsonObject | undefined;
}

export interface SigningKeyUpdateEdu {
  readonly type: 'm.signing_key_update';
  readonly userId: string;
  readonly masterKey: JsonObject | undefined;
  readonly selfSigningKey: JsonObject | undefined;
}

export interface DirectToDeviceEdu {
  readonly type: 'm.direct_to_device';
  readonly sender: string;
  /** The to-device event type, e.g. `m.room_key_request`. */
  readonly eventType: string;
  /** For idempotence: the same (origin, message_id) is delivered once. */
  readonly messageId: string;
  /** Local recipient → device id (or `*` for all its devices) → message content. */
  readonly messages: ReadonlyMap<string, ReadonlyMap<string, JsonObject>>;
}

/** An EDU type the spec does not define: the caller ignores it ("unknown edu_types are ignored"). */
export interface UnknownEdu {
  readonly type: 'unknown';
  readonly eduType: string;
  readonly content: JsonObject;
}

export type Edu = TypingEdu | ReceiptEdu | PresenceEdu | DeviceListUpdateEdu | SigningKeyUpdateEdu | DirectToDeviceEdu | UnknownEdu;

export type EduErrorCode =
  /** Not `{edu_type: string, content: object}`. */
  | 'malformed-envelope'
  /** The content does not follow the EDU type's schema. */
  | 'malformed-content'
  /** The EDU is about a user of another server than the one that sent it. */
  | 'foreign-user';

export interface EduError {
  readonly code: EduErrorCode;
  readonly eduType: string | undefined;
  readonly message: string;
}

/** An entry of a multi-entry EDU that was left out, and why. */
export interface SkippedEntry {
  readonly what: string;
  readonly reason: string;
}

export type EduParseResult =
  { readonly ok: true; readonly edu: Edu; readonly skipped: readonly SkippedEntry[] } | { readonly ok: false; readonly error: EduError };

export interface EduContext {
  /** The server that sent the transaction (authenticated). */
  readonly origin: string;
  /** Our server name: to-device messages are only for our users. */
  readonly localServerName: string;
}

class EduProblem extends Error {
  constructor(
    readonly code: EduErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function malformed(message: string): never {
  throw new EduProblem('malformed-content', message);
}

/** `userId` if it is a user id of `origin`, else an `EduProblem` (`what` names the field). */
function originUser(value: unknown, origin: string, what: string): string {
  if (!parseUserId(value)) malformed(`${what} is not a user id`);
  const userId = value as string;
  if (serverNameOf(userId) !== origin) throw new EduProblem('foreign-user', `${what} ${userId} is not a user of ${origin}`);
  return userId;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') malformed(`${what} must be a string`);
  return value;
}

function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') malformed(`${what} must be a boolean`);
  return value;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * A device-list stream id: an integer per the schema. Synapse reads them as strings and notes
 * they "may come as ints", so a string of digits is accepted too.
 */
function streamId(value: unknown, what: string): number {
  if (isNonNegativeInteger(value)) return value;
  if (typeof value === 'string' && /^[0-9]{1,15}$/.test(value)) return Number(value);
  malformed(`${what} must be a non-negative integer`);
}

/** Code points of `s`. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---- per type ----

function parseTyping(content: JsonObject, ctx: EduContext): TypingEdu {
  if (!isValidRoomId(content.room_id)) malformed('room_id is not a room id');
  if (typeof content.typing !== 'boolean') malformed('typing must be a boolean');
  return {
    type: 'm.typing',
    roomId: content.room_id as string,
    userId: originUser(content.user_id, ctx.origin, 'user_id'),
    typing: content.typing,
  };
}

function parseReceipts(content: JsonObject, ctx: EduContext, skipped: SkippedEntry[]): ReceiptEdu {
  const receipts: ReceiptUpdate[] = [];
  for (const roomId of Object.keys(content)) {
    const byType = content[roomId];
    if (!isValidRoomId(roomId) || !isJsonObject(byType)) {
      skipped.push({ what: `room ${roomId}`, reason: 'not a room id with an object of receipts' });
      continue;
    }
    for (const receiptType of Object.keys(byType)) {
      if (receiptType !== 'm.read') {
        skipped.push({ what: `${roomId} ${receiptType}`, reason: 'only m.read receipts are federated' });
        continue;
      }
      const byUser = byType[receiptType];
      if (!isJsonObject(byUser)) {
        skipped.push({ what: `${roomId} ${receiptType}`, reason: 'not an object of users' });
        continue;
      }
      for (const userId of Object.keys(byUser)) {
        const what = `${roomId} ${receiptType} ${userId}`;
        if (!parseUserId(userId)) {
          skipped.push({ what, reason: 'not a user id' });
          continue;
        }
        if (serverNameOf(userId) !== ctx.origin) {
          skipped.push({ what, reason: `not a user of ${ctx.origin}` });
          continue;
        }
        const receipt = byUser[userId];
        if (!isJsonObject(receipt)) {
          skipped.push({ what, reason: 'the receipt is not an object' });
          continue;
        }
        const eventIds = receipt.event_ids;
        if (!Array.isArray(eventIds) || eventIds.length === 0 || !eventIds.every((id) => isValidEventId(id))) {
          skipped.push({ what, reason: 'event_ids must be a non-empty array of event ids' });
          continue;
        }
        const data = receipt.data === undefined ? {} : receipt.data;
        if (!isJsonObject(data)) {
          skipped.push({ what, reason: 'data must be an object' });
          continue;
        }
        receipts.push({
          roomId,
          receiptType: 'm.read',
          userId,
          eventIds: eventIds as string[],
          data,
          ts: isNonNegativeInteger(data.ts) ? data.ts : undefined,
          // Synapse: "If the thread ID is invalid, consider it missing."
          threadId: typeof data.thread_id === 'string' ? data.thread_id : undefined,
        });
      }
    }
  }
  return { type: 'm.receipt', receipts };
}

const PRESENCE_STATES: ReadonlySet<string> = new Set(['online', 'unavailable', 'offline']);

function parsePresence(content: JsonObject, ctx: EduContext, skipped: SkippedEntry[]): PresenceEdu {
  const push = content.push;
  if (!Array.isArray(push)) malformed('push must be an array');
  const updates: PresenceUpdate[] = [];
  push.forEach((item, index) => {
    const what = `push[${index}]`;
    if (!isJsonObject(item)) {
      skipped.push({ what, reason: 'not an object' });
      return;
    }
    try {
      const userId = originUser(item.user_id, ctx.origin, 'user_id');
      if (typeof item.presence !== 'string' || !PRESENCE_STATES.has(item.presence)) {
        malformed('presence must be online, unavailable or offline');
      }
      const lastActiveAgo = item.last_active_ago;
      if (lastActiveAgo !== undefined && lastActiveAgo !== null && !isNonNegativeInteger(lastActiveAgo)) {
        malformed('last_active_ago must be a non-negative integer');
      }
      updates.push({
        userId,
        presence: item.presence as PresenceState,
        lastActiveAgo: isNonNegativeInteger(lastActiveAgo) ? lastActiveAgo : undefined,
        currentlyActive: optionalBoolean(item.currently_active, 'currently_active'),
        statusMsg: optionalString(item.status_msg, 'status_msg'),
      });
    } catch (err) {
      if (!(err instanceof EduProblem)) throw err;
      skipped.push({ what, reason: err.message });
    }
  });
  return { type: 'm.presence', updates };
}

function parseDeviceListUpdate(content: JsonObject, ctx: EduContext): DeviceListUpdateEdu {
  const userId = originUser(content.user_id, ctx.origin, 'user_id');
  if (typeof content.device_id !== 'string' || content.device_id === '') malformed('device_id must be a non-empty string');
  const deviceId = content.device_id;
  const prev = content.prev_id;
  let prevIds: number[] = [];
  if (prev !== undefined && prev !== null) {
    if (!Array.isArray(prev)) malformed('prev_id must be an array');
    prevIds = prev.map((p, i) => streamId(p, `prev_id[${i}]`));
  }
  const keys = content.keys;
  if (keys !== undefined && keys !== null) {
    if (!isJsonObject(keys)) malformed('keys must be an object');
    // The keys are stored as this device's: keys that name another user or device are not its.
    if (keys.user_id !== undefined && keys.user_id !== userId) malformed('keys.user_id is not the user_id');
    if (keys.device_id !== undefined && keys.device_id !== deviceId) malformed('keys.device_id is not the device_id');
  }
  return {
    type: 'm.device_list_update',
    userId,
    deviceId,
    deviceDisplayName: optionalString(content.device_display_name, 'device_display_name'),
    streamId: streamId(content.stream_id, 'stream_id'),
    prevIds,
    deleted: optionalBoolean(content.deleted, 'deleted') ?? false,
    keys: isJsonObject(keys) ? keys : undefined,
  };
}

/** A cross-signing key (`cross_signing_key.yaml`) of `userId` with the given usage. */
function crossSigningKey(value: unknown, userId: string, usage: string, what: string): JsonObject | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) malformed(`${what} must be an object`);
  if (value.user_id !== userId) malformed(`${what}.user_id is not the user_id`);
  if (!Array.isArray(value.usage) || !value.usage.every((u) => typeof u === 'string') || !value.usage.includes(usage)) {
    malformed(`${what}.usage must be an array of strings holding ${usage}`);
  }
  const keys = value.keys;
  if (!isJsonObject(keys) || Object.keys(keys).length === 0 || !Object.values(keys).every((k) => typeof k === 'string')) {
    malformed(`${what}.keys must be a non-empty object of strings`);
  }
  if (value.signatures !== undefined && !isJsonObject(value.signatures)) malformed(`${what}.signatures must be an object`);
  return value;
}

function parseSigningKeyUpdate(content: JsonObject, ctx: EduContext): SigningKeyUpdateEdu {
  const userId = originUser(content.user_id, ctx.origin, 'user_id');
  return {
    type: 'm.signing_key_update',
    userId,
    masterKey: crossSigningKey(content.master_key, userId, 'master', 'master_key'),
    selfSigningKey: crossSigningKey(content.self_signing_key, userId, 'self_signing', 'self_signing_key'),
  };
}

/** The schema: "Arbitrary utf8 string, of maximum length 32 codepoints." */
export const MAX_MESSAGE_ID_CODE_POINTS = 32;

function parseDirectToDevice(content: JsonObject, ctx: EduContext, skipped: SkippedEntry[]): DirectToDeviceEdu {
  const sender = originUser(content.sender, ctx.origin, 'sender');
  if (typeof content.type !== 'string' || content.type === '') malformed('type must be a non-empty string');
  const messageId = content.message_id;
  if (typeof messageId !== 'string' || messageId === '' || codePoints(messageId) > MAX_MESSAGE_ID_CODE_POINTS) {
    malformed(`message_id must be a string of 1 to ${MAX_MESSAGE_ID_CODE_POINTS} code points`);
  }
  const messagesJson = content.messages;
  if (!isJsonObject(messagesJson)) malformed('messages must be an object');
  const messages = new Map<string, Map<string, JsonObject>>();
  for (const userId of Object.keys(messagesJson)) {
    const byDevice = messagesJson[userId];
    if (!parseUserId(userId)) {
      skipped.push({ what: `messages.${userId}`, reason: 'not a user id' });
      continue;
    }
    // Synapse fails the whole transaction here, so the sender retries it forever; the other
    // recipients' messages are still good, so only this one is left out.
    if (serverNameOf(userId) !== ctx.localServerName) {
      skipped.push({ what: `messages.${userId}`, reason: `not a user of ${ctx.localServerName}` });
      continue;
    }
    if (!isJsonObject(byDevice)) {
      skipped.push({ what: `messages.${userId}`, reason: 'not an object of devices' });
      continue;
    }
    const devices = new Map<string, JsonObject>();
    for (const deviceId of Object.keys(byDevice)) {
      const message = byDevice[deviceId];
      if (deviceId === '' || !isJsonObject(message)) {
        skipped.push({ what: `messages.${userId}.${deviceId}`, reason: 'the message content must be an object' });
        continue;
      }
      devices.set(deviceId, message);
    }
    if (devices.size > 0) messages.set(userId, devices);
  }
  return { type: 'm.direct_to_device', sender, eventType: content.type, messageId, messages };
}

// ---- the envelope ----

/**
 * Reads one EDU of a transaction from `ctx.origin`. An unknown `edu_type` is returned as
 * `unknown` for the caller to ignore. Never throws.
 */
export function parseEdu(json: unknown, ctx: EduContext): EduParseResult {
  if (!isJsonObject(json) || typeof json.edu_type !== 'string') {
    return {
      ok: false,
      error: { code: 'malformed-envelope', eduType: undefined, message: 'an EDU is {"edu_type": string, "content": object}' },
    };
  }
  const eduType = json.edu_type;
  const content = json.content;
  if (!isJsonObject(content)) {
    return { ok: false, error: { code: 'malformed-envelope', eduType, message: 'the EDU content must be an object' } };
  }
  const skipped: SkippedEntry[] = [];
  try {
    let edu: Edu;
    switch (eduType) {
      case 'm.typing':
        edu = parseTyping(content, ctx);
        break;
      case 'm.receipt':
        edu = parseReceipts(content, ctx, skipped);
        break;
      case 'm.presence':
        edu = parsePresence(content, ctx, skipped);
        break;
      case 'm.device_list_update':
        edu = parseDeviceListUpdate(content, ctx);
        break;
      case 'm.signing_key_update':
        edu = parseSigningKeyUpdate(content, ctx);
        break;
      case 'm.direct_to_device':
        edu = parseDirectToDevice(content, ctx, skipped);
        break;
      default:
        edu = { type: 'unknown', eduType, content };
    }
    return { ok: true, edu, skipped };
  } catch (err) {
    if (err instanceof EduProblem) return { ok: false, error: { code: err.code, eduType, message: err.message } };
    // Nothing else is expected; a bug must still not fail the transaction.
    return { ok: false, error: { code: 'malformed-content', eduType, message: `unreadable EDU: ${String(err)}` } };
  }
}
