// The EDUs and transactions this server sends (spec: server-server API §Transactions, §EDUs,
// §Typing Notifications, §Presence, §Receipts, §Device Management, §End-to-End Encryption,
// §Send-to-device messaging). The reading side is edus.ts; what is built here passes its parsers.

import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

/** One EDU of a transaction: `{edu_type, content}`. */
export interface OutboundEdu {
  readonly edu_type: string;
  readonly content: JsonObject;
}

export function typingEdu(roomId: string, userId: string, typing: boolean): OutboundEdu {
  return { edu_type: 'm.typing', content: { room_id: roomId, user_id: userId, typing } };
}

export interface OutboundReceipt {
  readonly roomId: string;
  readonly userId: string;
  readonly eventId: string;
  readonly ts: number | undefined;
  /** `main` or a thread root's id; undefined for an unthreaded receipt. */
  readonly threadId: string | undefined;
}

/**
 * `m.receipt` EDUs for public read receipts (`m.read` only: private receipts never leave their
 * server). The content is keyed by room, then user, so a user's receipts in several threads of
 * one room need one EDU each: receipts are spread over as few EDUs as that allows, in order.
 */
export function receiptEdus(receipts: readonly OutboundReceipt[]): OutboundEdu[] {
  const edus: Array<{ content: JsonObject; keys: Set<string> }> = [];
  for (const receipt of receipts) {
    const key = `${receipt.roomId}\u0000${receipt.userId}`;
    let edu = edus.find((e) => !e.keys.has(key));
    if (!edu) edus.push((edu = { content: {}, keys: new Set() }));
    edu.keys.add(key);
    const room = (edu.content[receipt.roomId] ??= { 'm.read': {} }) as JsonObject;
    const data: JsonObject = {};
    if (receipt.ts !== undefined) data.ts = receipt.ts;
    if (receipt.threadId !== undefined) data.thread_id = receipt.threadId;
    (room['m.read'] as JsonObject)[receipt.userId] = { event_ids: [receipt.eventId], data };
  }
  return edus.map((e) => ({ edu_type: 'm.receipt', content: e.content }));
}

export interface OutboundPresence {
  readonly userId: string;
  readonly presence: 'online' | 'unavailable' | 'offline';
  /** Milliseconds since the user was last active, when known. */
  readonly lastActiveAgo: number | undefined;
  readonly currentlyActive: boolean | undefined;
  readonly statusMsg: string | undefined;
}

/** One `m.presence` EDU carrying every update (`push`). */
export function presenceEdu(updates: readonly OutboundPresence[]): OutboundEdu {
  const push: JsonObject[] = updates.map((u) => {
    const item: JsonObject = { user_id: u.userId, presence: u.presence };
    if (u.lastActiveAgo !== undefined) item.last_active_ago = u.lastActiveAgo;
    if (u.currentlyActive !== undefined) item.currently_active = u.currentlyActive;
    if (u.statusMsg !== undefined) item.status_msg = u.statusMsg;
    return item;
  });
  return { edu_type: 'm.presence', content: { push } };
}

export interface OutboundDeviceUpdate {
  readonly userId: string;
  readonly deviceId: string;
  readonly streamId: number;
  /** The update this one follows (the previous change of the user's devices), if any. */
  readonly prevId: number | undefined;
  /** The device's keys, when it exists and has any. */
  readonly keys: JsonObject | undefined;
  readonly deleted: boolean;
}

/**
 * `m.device_list_update`. The device's display name is left out, as Synapse does unless
 * `allow_device_name_lookup_over_federation` is set: other servers' users need not see it.
 */
export function deviceListUpdateEdu(update: OutboundDeviceUpdate): OutboundEdu {
  const content: JsonObject = {
    user_id: update.userId,
    device_id: update.deviceId,
    stream_id: update.streamId,
    prev_id: update.prevId === undefined ? [] : [update.prevId],
  };
  if (update.deleted) content.deleted = true;
  else if (update.keys !== undefined) content.keys = update.keys;
  return { edu_type: 'm.device_list_update', content };
}

/** `m.signing_key_update`: the user's current master and self-signing keys. */
export function signingKeyUpdateEdu(
  userId: string,
  masterKey: JsonObject | undefined,
  selfSigningKey: JsonObject | undefined,
): OutboundEdu {
  const content: JsonObject = { user_id: userId };
  if (masterKey) content.master_key = masterKey;
  if (selfSigningKey) content.self_signing_key = selfSigningKey;
  return { edu_type: 'm.signing_key_update', content };
}

/** `m.direct_to_device` for one destination: recipient → device id (or `*`) → content. */
export function directToDeviceEdu(
  sender: string,
  eventType: string,
  messageId: string,
  messages: Readonly<Record<string, Readonly<Record<string, JsonObject>>>>,
): OutboundEdu {
  return { edu_type: 'm.direct_to_device', content: { sender, type: eventType, message_id: messageId, messages: messages } };
}

/** Adds signatures kept beside a key's JSON into its `signatures` (as `/keys/query` serves them). */
export function withExtraSignatures(
  json: JsonObject,
  signatures: ReadonlyArray<{ signer: string; keyId: string; signature: string }>,
): JsonObject {
  if (signatures.length === 0) return json;
  const merged: JsonObject = {};
  const existing = isJsonObject(json.signatures) ? json.signatures : {};
  for (const [signer, sigs] of Object.entries(existing)) merged[signer] = isJsonObject(sigs) ? { ...sigs } : sigs;
  for (const { signer, keyId, signature } of signatures) {
    const bySigner = isJsonObject(merged[signer]) ? merged[signer] : (merged[signer] = {});
    bySigner[keyId] = signature;
  }
  return { ...json, signatures: merged };
}

/** The body of `PUT /_matrix/federation/v1/send/{txnId}`. */
export function transactionBody(
  origin: string,
  originServerTs: number,
  pdus: readonly JsonObject[],
  edus: readonly OutboundEdu[],
): JsonObject {
  const body: JsonObject = { origin, origin_server_ts: originServerTs, pdus: pdus as JsonValue[] };
  if (edus.length > 0) body.edus = edus.map((e) => ({ edu_type: e.edu_type, content: e.content }));
  return body;
}

/** The PDUs the destination refused, from its `/send` answer (`{pdus: {event_id: {error}}}`). */
export function refusedPdus(answer: JsonValue): Array<{ eventId: string; error: string }> {
  if (!isJsonObject(answer) || !isJsonObject(answer.pdus)) return [];
  const refused: Array<{ eventId: string; error: string }> = [];
  for (const [eventId, result] of Object.entries(answer.pdus)) {
    if (isJsonObject(result) && result.error !== undefined)
      refused.push({ eventId, error: typeof result.error === 'string' ? result.error : JSON.stringify(result.error) });
  }
  return refused;
}
