// Reading and writing PDUs: `parsePdu` checks a PDU against its room version's event format and
// turns it into a `RoomEvent`; `finaliseEvent` hashes, signs and ids a PDU this server builds.
//
// What is checked here is only what the room version's format says (shape, identifiers, sizes,
// strict canonical JSON). Signatures, content hashes and the auth rules are separate steps with
// separate outcomes (drop / redact / reject), decided by the caller.

import { CanonicalJsonError, encodeCanonicalJson } from './canonical-json.js';
import { InvalidEventError } from './events.js';
import type { Pdu, RoomEvent } from './events.js';
import {
  CONTENT_HASH_OMITTED_KEYS,
  canonicalOptionsFor,
  contentHashInput,
  eventIdFromReferenceInput,
  referenceHashInput,
  roomIdFromCreateEventId,
  sha256,
  sha256Base64,
} from './hashes.js';
import { isValidEventId, isValidRoomId, parseUserId } from './identifiers.js';
import type { JsonObject, JsonValue } from './json.js';
import { isJsonObject } from './json.js';
import { redactEvent } from './redaction.js';
import type { RoomVersion } from './room-versions.js';
import type { SigningKey } from './signing.js';
import { addSignature, signBytes, verifyJsonSignature } from './signing.js';

/** The canonical JSON of a whole PDU may be at most this many bytes. */
export const MAX_PDU_BYTES = 65536;
/** `type`, `state_key`, `sender`, `room_id` and `event_id` may be at most this long. */
export const MAX_EVENT_FIELD_LENGTH = 255;
/** `depth` may be at most this (Synapse's bound, the canonical JSON integer limit). */
export const MAX_DEPTH = Number.MAX_SAFE_INTEGER;

export interface ParsePduOptions {
  /**
   * The event id, when the caller already knows it for certain (an event loaded from our own
   * store): skips computing the reference hash. Never pass an id that came with the PDU from
   * another server.
   */
  readonly eventId?: string;
}

/**
 * Checks `json` against `roomVersion`'s event format and returns it as a `RoomEvent` (whose `pdu`
 * is `json` itself, not a copy: do not mutate it afterwards). For v3+ the event id is computed;
 * for v1/v2 it is read from `event_id`; a v12 create event's room id is derived from its id.
 *
 * `unsigned` is checked like the rest (strict canonical JSON, size), so a federation receiver
 * should first cut it down to what it keeps, as Synapse does before these checks (it keeps only
 * `age`, and on member events the invite/knock room state).
 *
 * Every problem is an `InvalidEventError`: `M_TOO_LARGE` for size limits, `M_BAD_JSON` otherwise.
 */
export function parsePdu(json: unknown, roomVersion: RoomVersion, options?: ParsePduOptions): RoomEvent {
  try {
    return parseUnchecked(json, roomVersion, options?.eventId);
  } catch (err) {
    throw asInvalidEvent(err);
  }
}

/**
 * A `RoomEvent` for a PDU this server stored after checking it: the shape is still read, but the
 * canonical re-encoding (size and canonical-JSON checks) and the id computation are skipped, which
 * is most of the cost of loading an event.
 */
export function storedRoomEvent(pdu: JsonObject, roomVersion: RoomVersion, eventId: string): RoomEvent {
  try {
    return parseUnchecked(pdu, roomVersion, eventId, 0);
  } catch (err) {
    throw asInvalidEvent(err);
  }
}

function asInvalidEvent(err: unknown): InvalidEventError {
  if (err instanceof InvalidEventError) return err;
  if (err instanceof CanonicalJsonError) return new InvalidEventError(`event is not canonical JSON: ${err.message}`);
  // Nothing else is expected; if something slips through (a bug), it still must not escape as
  // a TypeError that a caller would treat as a server fault.
  const message = err instanceof Error ? err.message : String(err);
  return new InvalidEventError(`malformed event: ${message}`);
}

function bad(message: string): never {
  throw new InvalidEventError(message, 'M_BAD_JSON');
}

function tooLarge(message: string): never {
  throw new InvalidEventError(message, 'M_TOO_LARGE');
}

/** Code points of `s` (surrogate pairs count once). */
function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

function checkFieldLength(name: string, value: string, roomVersion: RoomVersion): void {
  if (value.length <= MAX_EVENT_FIELD_LENGTH && (!roomVersion.strictEventByteLimits || value.length * 3 <= MAX_EVENT_FIELD_LENGTH)) {
    return; // fast path: short enough in any unit
  }
  const length = roomVersion.strictEventByteLimits ? Buffer.byteLength(value, 'utf8') : codePointLength(value);
  if (length > MAX_EVENT_FIELD_LENGTH) {
    tooLarge(`"${name}" is longer than ${MAX_EVENT_FIELD_LENGTH} ${roomVersion.strictEventByteLimits ? 'bytes' : 'code points'}`);
  }
}

function requireString(pdu: JsonObject, key: string): string {
  const value = pdu[key];
  if (typeof value !== 'string') bad(`"${key}" must be a string`);
  return value;
}

function requireInteger(pdu: JsonObject, key: string): number {
  const value = pdu[key];
  if (typeof value !== 'number' || !Number.isInteger(value)) bad(`"${key}" must be an integer`);
  return value;
}

/** Reads `prev_events` / `auth_events` in the room version's shape, checking each id. */
function readEventRefs(pdu: JsonObject, key: string, roomVersion: RoomVersion): string[] {
  const refs = pdu[key];
  if (!Array.isArray(refs)) bad(`"${key}" must be an array`);
  const format = roomVersion.eventIdFormat;
  const ids: string[] = new Array<string>(refs.length);
  for (let i = 0; i < refs.length; i++) {
    let id: JsonValue | undefined = refs[i];
    if (format === 'v1') {
      // Rooms v1/v2: [event_id, {algorithm: hash}] pairs.
      if (!Array.isArray(id) || id.length !== 2 || !isStringMap(id[1])) {
        bad(`"${key}[${i}]" must be an [event id, hashes] pair`);
      }
      id = id[0];
    }
    if (typeof id !== 'string' || !isValidEventId(id, format, SKIP_LENGTH)) {
      bad(`"${key}[${i}]" is not a valid event id`);
    }
    ids[i] = id;
  }
  return ids;
}

const SKIP_LENGTH = Object.freeze({ skipLengthCheck: true });

function isStringMap(value: JsonValue | undefined): boolean {
  if (!isJsonObject(value)) return false;
  for (const key in value) if (typeof value[key] !== 'string') return false;
  return true;
}

function parseUnchecked(
  json: unknown,
  roomVersion: RoomVersion,
  knownEventId: string | undefined,
  knownCanonicalBytes?: number,
): RoomEvent {
  if (!isJsonObject(json)) bad('a PDU must be a JSON object');
  const pdu = json;

  // Strict canonical JSON (v6+) and the whole-PDU size limit: one encoding does both. Strict
  // encoding refuses floats and out-of-range integers; relaxed (v1–5) only non-JSON values.
  // `finaliseEvent` has done both already and passes the size.
  let bytes = knownCanonicalBytes;
  if (bytes === undefined) {
    let canonical: string;
    try {
      canonical = encodeCanonicalJson(pdu, canonicalOptionsFor(roomVersion));
    } catch (err) {
      if (err instanceof CanonicalJsonError) bad(`event is not canonical JSON: ${err.message}`);
      throw err;
    }
    // Each UTF-16 unit is at most 3 UTF-8 bytes, so short texts skip the byte count.
    bytes = canonical.length * 3 <= MAX_PDU_BYTES ? canonical.length : Buffer.byteLength(canonical, 'utf8');
  }
  if (bytes > MAX_PDU_BYTES) tooLarge(`event is larger than ${MAX_PDU_BYTES} bytes`);

  const type = requireString(pdu, 'type');
  checkFieldLength('type', type, roomVersion);

  let stateKey: string | undefined;
  if ('state_key' in pdu) {
    stateKey = requireString(pdu, 'state_key');
    checkFieldLength('state_key', stateKey, roomVersion);
  }

  const sender = requireString(pdu, 'sender');
  if (!parseUserId(sender, SKIP_LENGTH)) bad('"sender" is not a valid user id');
  checkFieldLength('sender', sender, roomVersion);

  const content = pdu.content;
  if (!isJsonObject(content)) bad('"content" must be an object');

  const originServerTs = requireInteger(pdu, 'origin_server_ts');
  const depth = requireInteger(pdu, 'depth');
  if (depth < 0 || depth > MAX_DEPTH) bad(`"depth" must be between 0 and ${MAX_DEPTH}`);

  const hashes = pdu.hashes;
  if (!isStringMap(hashes) || typeof (hashes as JsonObject).sha256 !== 'string') {
    bad('"hashes" must be an object of strings with "sha256"');
  }
  const signatures = pdu.signatures;
  if (!isJsonObject(signatures)) bad('"signatures" must be an object');
  for (const server in signatures) {
    if (!isStringMap(signatures[server])) bad(`"signatures.${server}" must be an object of strings`);
  }

  const prevEventIds = readEventRefs(pdu, 'prev_events', roomVersion);
  const authEventIds = readEventRefs(pdu, 'auth_events', roomVersion);

  // The create event of a v12 room has no room_id: the room id is derived from its event id.
  const isV12Create = roomVersion.roomIdFromCreateEvent && type === 'm.room.create' && stateKey === '';
  let roomId: string | undefined;
  if (isV12Create) {
    if ('room_id' in pdu) bad('a create event in this room version must not have "room_id"');
  } else {
    roomId = requireString(pdu, 'room_id');
    if (!isValidRoomId(roomId, roomVersion, SKIP_LENGTH)) bad('"room_id" is not a valid room id');
    checkFieldLength('room_id', roomId, roomVersion);
  }

  let eventId: string;
  if (roomVersion.eventIdFormat === 'v1') {
    eventId = requireString(pdu, 'event_id');
    if (!isValidEventId(eventId, 'v1', SKIP_LENGTH)) bad('"event_id" is not a valid event id');
    if (knownEventId !== undefined && knownEventId !== eventId) bad('"event_id" does not match the known id');
  } else {
    if ('event_id' in pdu) bad('PDUs in this room version must not carry "event_id"');
    eventId =
      knownEventId ??
      eventIdFromReferenceInput(
        referenceHashInput(redactEvent(pdu, roomVersion), canonicalOptionsFor(roomVersion)),
        roomVersion.eventIdFormat,
      );
  }
  checkFieldLength('event_id', eventId, roomVersion);
  if (isV12Create) roomId = roomIdFromCreateEventId(eventId);

  if (roomVersion.roomIdFromCreateEvent && !isV12Create && authEventIds.includes(`$${roomId!.slice(1)}`)) {
    bad('"auth_events" must not list the create event in this room version');
  }

  // What a redaction redacts is read leniently: a missing or odd `redacts` makes a redaction
  // that redacts nothing, which every server agrees is harmless, whereas refusing the event here
  // would leave a hole in our copy of the room's DAG.
  let redacts: string | undefined;
  if (type === 'm.room.redaction') {
    const value = roomVersion.redactsInContent ? content.redacts : pdu.redacts;
    if (typeof value === 'string') redacts = value;
  }

  return {
    eventId,
    roomId: roomId!,
    type,
    stateKey,
    sender,
    content,
    originServerTs,
    depth,
    prevEventIds,
    authEventIds,
    redacts,
    pdu,
  };
}

// ---- building events ----

export interface HashedAndSigned {
  /** The full event with `hashes.sha256` and this server's signature. */
  readonly pdu: Pdu;
  /** Its reference hash (SHA-256 of the redacted, signature-less form). */
  readonly referenceHash: Buffer;
}

/**
 * The spec's creation steps without any format check (the appendix test vectors need exactly
 * this): content hash → redact a copy → sign the redacted copy → copy the signatures onto the
 * full event. Existing signatures and other `hashes` entries are kept. `pdu` is not modified.
 */
export function hashAndSign(pdu: JsonObject, roomVersion: RoomVersion, serverName: string, key: SigningKey): HashedAndSigned {
  const { event, signedBytes } = hashAndSignInternal(pdu, roomVersion, serverName, key);
  return { pdu: event, referenceHash: sha256(signedBytes) };
}

function hashAndSignInternal(
  pdu: JsonObject,
  roomVersion: RoomVersion,
  serverName: string,
  key: SigningKey,
): { event: Pdu; signedBytes: Buffer; contentHashText: string } {
  const canonicalOptions = canonicalOptionsFor(roomVersion);
  const contentHashText = contentHashInput(pdu, canonicalOptions);
  const existingHashes = isJsonObject(pdu.hashes) ? pdu.hashes : {};
  // A fresh object we own, so it can take the signatures below without another copy.
  const event: Pdu = { ...pdu, hashes: { ...existingHashes, sha256: sha256Base64(contentHashText) } };
  // The signed bytes are exactly the reference hash input: the redacted event without
  // `signatures` and `unsigned`. Encode once, use twice.
  const signedText = referenceHashInput(redactEvent(event, roomVersion), canonicalOptions);
  const signedBytes = Buffer.from(signedText, 'utf8');
  event.signatures = addSignature(event.signatures, serverName, key.keyId, signBytes(signedBytes, key));
  return { event, signedBytes, contentHashText };
}

/**
 * The byte length of `pdu`'s canonical JSON, given the canonical text of its content-hash subset
 * (everything but the keys the content hash omits): only the omitted keys, which are small, need
 * encoding. Also checks they are canonical JSON.
 */
function canonicalByteLength(pdu: Pdu, contentHashText: string, roomVersion: RoomVersion): number {
  let bytes = Buffer.byteLength(contentHashText, 'utf8');
  let added = 0;
  for (const key of CONTENT_HASH_OMITTED_KEYS) {
    if (!(key in pdu)) continue;
    const value = encodeCanonicalJson(pdu[key], canonicalOptionsFor(roomVersion));
    bytes += key.length + 2 + 1 + Buffer.byteLength(value, 'utf8') + 1; // "key":value,
    added++;
  }
  // With no other keys, the first added member needs no comma.
  if (added > 0 && contentHashText === '{}') bytes -= 1;
  return bytes;
}

/**
 * Finishes an event this server creates: hash, sign, and (v3+) id it, then check the result
 * against the room version's format (so an oversized or malformed event never leaves here).
 *
 * `unsignedPdu` is the complete PDU apart from `hashes`, `signatures` and (v3+) the event id: v1/v2
 * callers put `event_id` in first (`generateLegacyEventId`), because it is covered by the hashes;
 * a v12 create event has no `room_id`. Throws `InvalidEventError` (`M_BAD_JSON` / `M_TOO_LARGE`).
 */
export function finaliseEvent(
  unsignedPdu: JsonObject,
  roomVersion: RoomVersion,
  serverName: string,
  key: SigningKey,
): { pdu: Pdu; event: RoomEvent } {
  try {
    if (!isJsonObject(unsignedPdu)) bad('a PDU must be a JSON object');
    const { event: pdu, signedBytes, contentHashText } = hashAndSignInternal(unsignedPdu, roomVersion, serverName, key);
    // The signed bytes are the reference hash input.
    const eventId = roomVersion.eventIdFormat === 'v1' ? undefined : eventIdFromReferenceInput(signedBytes, roomVersion.eventIdFormat);
    const size = canonicalByteLength(pdu, contentHashText, roomVersion);
    return { pdu, event: parseUnchecked(pdu, roomVersion, eventId, size) };
  } catch (err) {
    throw asInvalidEvent(err);
  }
}

/**
 * Whether `entity` signed `pdu` with `keyId` / `publicKey`. Event signatures cover the redacted
 * event, so this checks that (and succeeds whether the full or an already redacted copy was
 * received). Malformed input is `false`, never an exception.
 */
export function verifyEventSignature(
  pdu: JsonObject,
  roomVersion: RoomVersion,
  entity: string,
  keyId: string,
  publicKey: Uint8Array | string,
): boolean {
  let redacted: Pdu;
  try {
    redacted = redactEvent(pdu, roomVersion);
  } catch {
    return false;
  }
  return verifyJsonSignature(redacted, entity, keyId, publicKey);
}
