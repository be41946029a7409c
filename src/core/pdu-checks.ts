// The checks a receiving server makes on a PDU that need no I/O (spec: server-server API §Checks
// performed on receipt of a PDU, steps 1–3; §Validating hashes and signatures on received events;
// §Validating Policy Server signatures), in the spec's order:
//
// 1. the event format of its room version (else drop): `parsePdu`;
// 2. the signatures of the servers that must have signed it (else drop);
// 3. the content hash (else continue with the redacted copy).
//
// Steps 4–7 (auth rules against the auth events, the state before, the current state, the policy
// server) need room state and are the caller's. Keys are the caller's too: it parses the events
// first, asks `keyRequestsFor` which (server, key id, validity) it must have, fetches them in one
// batch, and passes a synchronous lookup to `checkPduSignatures`.

import { InvalidEventError } from './events.js';
import type { Pdu, RoomEvent } from './events.js';
import { parsePdu, storedRoomEvent } from './event-format.js';
import { canonicalOptionsFor, checkContentHash } from './hashes.js';
import { parseUserId, serverNameOf } from './identifiers.js';
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';
import { redactEvent } from './redaction.js';
import type { RoomVersion } from './room-versions.js';
import type { KeyRequest, ServerVerifyKey } from './server-keys.js';
import { isKeyUsableForEvent, minimumKeyValidityForEvent } from './server-keys.js';
import { signatureKeyIds, verifyJsonSignature } from './signing.js';

/**
 * The key id a policy server signs with. Its key lives in the room's `m.room.policy` state, not
 * in the server's published keys, so the ordinary signature check skips it (§Validating hashes
 * and signatures: "the policy server key is not expected to be published and therefore should be
 * skipped at this stage").
 */
export const POLICY_SERVER_KEY_ID = 'ed25519:policy_server';

// ---- 0. what we keep of a received PDU ----

/** The `unsigned` keys kept from a member event received over federation (as Synapse). */
const KEPT_UNSIGNED_MEMBER = ['invite_room_state', 'knock_room_state'] as const;

export interface TrimmedPdu {
  /** The PDU with `unsigned` cut down to the stripped room state of member events. */
  readonly pdu: unknown;
  /**
   * When the event was created by the sender's clock, from `unsigned.age` (`receivedAt` − `age`):
   * `age` is only true at the moment of receipt, so it is turned into a timestamp here and kept
   * apart from the PDU (never sent on: whoever sends the event later computes its own `age`).
   */
  readonly ageTs: number | undefined;
}

/**
 * A copy of a received PDU with `unsigned` cut down to what we keep: on member events the
 * invite/knock room state; `age` becomes `ageTs`. Anything else a remote server puts in
 * `unsigned` is covered by no signature and is not ours to store or pass on (Synapse keeps the
 * same). Run it before `parseReceivedPdu`, whose size and canonical-JSON checks include
 * `unsigned`. A value that is not an object is returned unchanged (the format check refuses it).
 */
export function trimReceivedPdu(json: unknown, receivedAt: number): TrimmedPdu {
  if (!isJsonObject(json) || !('unsigned' in json)) return { pdu: json, ageTs: undefined };
  const { unsigned, ...rest } = json;
  const kept: JsonObject = {};
  let ageTs: number | undefined;
  if (isJsonObject(unsigned)) {
    if (json.type === 'm.room.member') {
      for (const key of KEPT_UNSIGNED_MEMBER) if (key in unsigned) kept[key] = unsigned[key]!;
    }
    const age = unsigned.age;
    if (typeof age === 'number' && Number.isSafeInteger(age)) ageTs = receivedAt - age;
  }
  return { pdu: Object.keys(kept).length > 0 ? { ...rest, unsigned: kept } : rest, ageTs };
}

// ---- 1. format ----

export type PduCheckOutcome =
  /** Not accepted at all: not stored, not part of the room's graph (steps 1 and 2). */
  | { readonly outcome: 'drop'; readonly stage: 'format' | 'signatures'; readonly reason: string }
  /** The content hash did not match: continue with this redacted copy (step 3). */
  | { readonly outcome: 'redacted'; readonly event: RoomEvent; readonly reason: string }
  | { readonly outcome: 'ok'; readonly event: RoomEvent };

export type PduParseResult =
  { readonly ok: true; readonly event: RoomEvent } | { readonly ok: false; readonly outcome: PduCheckOutcome & { outcome: 'drop' } };

/**
 * Step 1: the event format of `roomVersion` (`parsePdu`: shape, identifiers, sizes, canonical
 * JSON). With `expectedRoomId` (the room the caller looked the version up for), an event of
 * another room is dropped too. Never throws.
 */
export function parseReceivedPdu(json: unknown, roomVersion: RoomVersion, expectedRoomId?: string): PduParseResult {
  let event: RoomEvent;
  try {
    event = parsePdu(json, roomVersion);
  } catch (err) {
    const reason = err instanceof InvalidEventError ? err.message : `malformed event: ${String(err)}`;
    return { ok: false, outcome: { outcome: 'drop', stage: 'format', reason } };
  }
  if (expectedRoomId !== undefined && event.roomId !== expectedRoomId) {
    return { ok: false, outcome: { outcome: 'drop', stage: 'format', reason: `the event is in ${event.roomId}, not ${expectedRoomId}` } };
  }
  return { ok: true, event };
}

// ---- 2. signatures ----

export type SignatureRequirementReason =
  /** The server of the `sender` (every room version). */
  | 'sender'
  /** Rooms v1/v2: the server in the `event_id`, when it is not the sender's. */
  | 'event-id'
  /** Restricted joins: the server of `join_authorised_via_users_server`. */
  | 'authorising-server';

export interface RequiredSignature {
  readonly serverName: string;
  readonly reason: SignatureRequirementReason;
}

export type RequiredSignaturesResult =
  { readonly ok: true; readonly required: readonly RequiredSignature[] } | { readonly ok: false; readonly reason: string };

function isThirdPartyInvite(event: RoomEvent): boolean {
  return event.type === 'm.room.member' && event.content.membership === 'invite' && 'third_party_invite' in event.content;
}

/**
 * The servers whose signatures `event` must carry (§Validating hashes and signatures on received
 * events; room versions' auth rules):
 * - the sender's server, except for an invite made from a third-party invite, which the
 *   invited user's server may have built and signed on the inviter's behalf (the spec: "the
 *   server which actually sends the event may be a different server"; the identity server's
 *   signature in `third_party_invite.signed` is checked by the auth rules instead, as Synapse);
 * - rooms v1/v2: the server in the `event_id` when it differs from the sender's;
 * - room versions with restricted joins (v8+): the server of
 *   `content.join_authorised_via_users_server` of an `m.room.member` event, which the auth
 *   rules require to have "validly signed" the event (rule 5.2.1; `auth-rules.ts` checks only that
 *   the signature is there and relies on this check for its validity). Synapse does this for
 *   joins only; the spec's rule, which `auth-rules.ts` follows, is for any membership.
 * Room version 12 (MSC4289, MSC4291) adds nothing here: its rule is the sender's server too.
 * An authoriser that is not a user id cannot be checked: the event is dropped.
 */
export function requiredSignatures(event: RoomEvent, roomVersion: RoomVersion): RequiredSignaturesResult {
  const required: RequiredSignature[] = [];
  const add = (serverName: string, reason: SignatureRequirementReason) => {
    if (!required.some((r) => r.serverName === serverName)) required.push({ serverName, reason });
  };
  const senderServer = serverNameOf(event.sender);
  if (senderServer === undefined) return { ok: false, reason: `sender ${JSON.stringify(event.sender)} has no server name` };
  if (!isThirdPartyInvite(event)) add(senderServer, 'sender');
  if (roomVersion.eventIdFormat === 'v1') {
    const eventServer = serverNameOf(event.eventId);
    if (eventServer === undefined) return { ok: false, reason: `event id ${JSON.stringify(event.eventId)} has no server name` };
    if (eventServer !== senderServer) add(eventServer, 'event-id');
  }
  if (roomVersion.restrictedJoins && event.type === 'm.room.member' && 'join_authorised_via_users_server' in event.content) {
    const authoriser = parseUserId(event.content.join_authorised_via_users_server);
    if (!authoriser) {
      return { ok: false, reason: 'join_authorised_via_users_server is not a user id' };
    }
    add(authoriser.serverName, 'authorising-server');
  }
  return { ok: true, required };
}

/** The ed25519 key ids `server` signed `pdu` with, bar the policy server key. */
function serverKeyIds(pdu: JsonObject, server: string): string[] {
  return signatureKeyIds(pdu, server).filter((id) => id !== POLICY_SERVER_KEY_ID);
}

/**
 * Every (server, key id, validity) that the signature checks of `events` need, merged so each
 * key appears once with the latest validity any event needs (as Synapse batches its fetches).
 * Events whose requirements cannot be read contribute nothing (their check drops them).
 */
export function keyRequestsFor(events: readonly { readonly event: RoomEvent; readonly roomVersion: RoomVersion }[]): KeyRequest[] {
  const byKey = new Map<string, KeyRequest>();
  for (const { event, roomVersion } of events) {
    const required = requiredSignatures(event, roomVersion);
    if (!required.ok) continue;
    const minimumValidUntilTs = minimumKeyValidityForEvent(event.originServerTs, roomVersion);
    for (const { serverName } of required.required) {
      for (const keyId of serverKeyIds(event.pdu, serverName)) {
        const id = `${serverName}\u0000${keyId}`;
        const existing = byKey.get(id);
        if (!existing || existing.minimumValidUntilTs < minimumValidUntilTs) {
          byKey.set(id, { serverName, keyId, minimumValidUntilTs });
        }
      }
    }
  }
  return [...byKey.values()];
}

/**
 * Finds a key fetched earlier. Given the validity needed, so a store can pick the right copy;
 * a returned key that does not cover it is skipped anyway.
 */
export type KeyLookup = (serverName: string, keyId: string, minimumValidUntilTs: number) => ServerVerifyKey | undefined;

export type SignatureCheckResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly serverName: string | undefined;
      readonly problem: 'unreadable-requirement' | 'no-signature' | 'no-usable-key' | 'bad-signature' | 'unredactable';
      readonly reason: string;
    };

/**
 * Step 2: for each required server, the event (redacted, so a redacted copy verifies too) must
 * carry a signature by one of its keys that we know and that was valid at the event's time
 * (room v5+), and every such signature must verify. Signatures by unknown or expired keys are
 * skipped, as the spec says; a server with none left fails.
 */
export function checkPduSignatures(event: RoomEvent, roomVersion: RoomVersion, lookupKey: KeyLookup): SignatureCheckResult {
  const required = requiredSignatures(event, roomVersion);
  if (!required.ok) return { ok: false, serverName: undefined, problem: 'unreadable-requirement', reason: required.reason };
  let redacted: Pdu;
  try {
    redacted = redactEvent(event.pdu, roomVersion);
  } catch (err) {
    return { ok: false, serverName: undefined, problem: 'unredactable', reason: String(err) };
  }
  const minimum = minimumKeyValidityForEvent(event.originServerTs, roomVersion);
  for (const { serverName, reason } of required.required) {
    const keyIds = serverKeyIds(redacted, serverName);
    if (keyIds.length === 0) {
      return { ok: false, serverName, problem: 'no-signature', reason: `not signed by ${serverName} (${reason})` };
    }
    let verified = 0;
    for (const keyId of keyIds) {
      const key = lookupKey(serverName, keyId, minimum);
      if (!key || key.serverName !== serverName || key.keyId !== keyId || !isKeyUsableForEvent(key, minimum)) continue;
      if (!verifyJsonSignature(redacted, serverName, keyId, key.publicKey)) {
        return { ok: false, serverName, problem: 'bad-signature', reason: `the signature of ${serverName} by ${keyId} does not verify` };
      }
      verified++;
    }
    if (verified === 0) {
      return {
        ok: false,
        serverName,
        problem: 'no-usable-key',
        reason: `no known key of ${serverName} valid at ${minimum} signed the event (${keyIds.join(', ')})`,
      };
    }
  }
  return { ok: true };
}

// ---- 3. content hash ----

/**
 * Step 3: the content hash. On a mismatch the receiver continues with the redacted copy it
 * computes itself (not whatever was received), as the spec says.
 */
export function checkPduContentHash(event: RoomEvent, roomVersion: RoomVersion): PduCheckOutcome {
  if (checkContentHash(event.pdu, canonicalOptionsFor(roomVersion))) return { outcome: 'ok', event };
  let redacted: RoomEvent;
  try {
    redacted = storedRoomEvent(redactEvent(event.pdu, roomVersion), roomVersion, event.eventId);
  } catch (err) {
    // Cannot happen for an event that passed the format check (redaction keeps every field the
    // format needs); should it ever, the event is dropped rather than crashing the caller.
    return { outcome: 'drop', stage: 'format', reason: `the redacted event is not valid: ${String(err)}` };
  }
  return { outcome: 'redacted', event: redacted, reason: 'the content hash does not match; using the redacted event' };
}

/** Steps 2 and 3 on an event that passed step 1. */
export function checkParsedPdu(event: RoomEvent, roomVersion: RoomVersion, lookupKey: KeyLookup): PduCheckOutcome {
  const signatures = checkPduSignatures(event, roomVersion, lookupKey);
  if (!signatures.ok) return { outcome: 'drop', stage: 'signatures', reason: signatures.reason };
  return checkPduContentHash(event, roomVersion);
}

/**
 * Steps 1–3 for one received PDU whose keys are already at hand. For a batch, call
 * `parseReceivedPdu` on each, fetch `keyRequestsFor(...)`, then `checkParsedPdu` on each.
 */
export function checkReceivedPdu(json: unknown, roomVersion: RoomVersion, lookupKey: KeyLookup, expectedRoomId?: string): PduCheckOutcome {
  const parsed = parseReceivedPdu(json, roomVersion, expectedRoomId);
  if (!parsed.ok) return parsed.outcome;
  return checkParsedPdu(parsed.event, roomVersion, lookupKey);
}

// ---- policy servers (spec v1.18) ----

export interface PolicyServer {
  /** The policy server's name (`via`); its signature is under this name. */
  readonly serverName: string;
  /** Its ed25519 public key from the room state, unpadded base64. */
  readonly publicKey: string;
}

/**
 * The policy server named by an `m.room.policy` state event's content, if the content is valid:
 * a string `via` and an object `public_keys` with a string `ed25519` (§Determining if a Policy
 * Server is enabled in a room). Whether the room uses it also needs `via` to have a joined user in
 * the current state, which the caller knows.
 */
export function policyServerFromContent(content: unknown): PolicyServer | undefined {
  if (!isJsonObject(content) || typeof content.via !== 'string' || content.via === '') return undefined;
  const keys = content.public_keys;
  if (!isJsonObject(keys) || typeof keys.ed25519 !== 'string') return undefined;
  return { serverName: content.via, publicKey: keys.ed25519 };
}

export type PolicyServerVerdict =
  /** The `m.room.policy` state event with an empty state key is never sent to the policy server. */
  | 'exempt'
  | 'signed'
  /** No or an invalid policy server signature: ask again, else soft-fail (§Validating Policy Server signatures). */
  | 'not-signed';

/** Whether `event` carries a valid signature of the room's policy server. */
export function policyServerVerdict(event: RoomEvent, roomVersion: RoomVersion, policy: PolicyServer): PolicyServerVerdict {
  if (event.type === 'm.room.policy' && event.stateKey === '') return 'exempt';
  let redacted: Pdu;
  try {
    redacted = redactEvent(event.pdu, roomVersion);
  } catch {
    return 'not-signed';
  }
  return verifyJsonSignature(redacted, policy.serverName, POLICY_SERVER_KEY_ID, policy.publicKey) ? 'signed' : 'not-signed';
}
