// Content hashes, reference hashes, event ids and v12 room ids (spec server-server API §Signing
// Events, §Calculating the content hash / reference hash; room versions §Event IDs).

import { hash, randomBytes } from 'node:crypto';
import { decodeBase64Lenient, encodeBase64, encodeBase64Url } from './base64.js';
import { encodeCanonicalJsonWithout } from './canonical-json.js';
import type { CanonicalJsonOptions } from './canonical-json.js';
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';
import { redactEvent } from './redaction.js';
import type { EventIdFormat, RoomVersion } from './room-versions.js';

/**
 * Left out of the content hash: the spec's `unsigned`, `signatures`, `hashes`, plus keys Synapse
 * also drops (`age_ts`, `outlier`, `destinations`: internal metadata that older Synapses leaked
 * onto PDUs), so that we agree with it on such events.
 */
const NOT_IN_CONTENT_HASH: ReadonlySet<string> = new Set(['unsigned', 'signatures', 'hashes', 'age_ts', 'outlier', 'destinations']);

/** Left out of the reference hash (of the redacted event); `age_ts` as Synapse does. */
const NOT_IN_REFERENCE_HASH: ReadonlySet<string> = new Set(['signatures', 'unsigned', 'age_ts']);

// `crypto.hash` (one-shot) is markedly faster than `createHash().update().digest()` for inputs
// the size of an event, and can produce base64 directly.

/** SHA-256 of the UTF-8 bytes of `data`. */
export function sha256(data: string | Uint8Array): Buffer {
  return hash('sha256', data, 'buffer');
}

/** SHA-256 as unpadded base64 (standard alphabet). */
export function sha256Base64(data: string | Uint8Array): string {
  return hash('sha256', data, 'base64').slice(0, 43); // 32 bytes: 43 characters and one `=`
}

/** SHA-256 as unpadded URL-safe base64. */
export function sha256Base64Url(data: string | Uint8Array): string {
  return hash('sha256', data, 'base64url');
}

/** The canonical text the content hash covers. */
export function contentHashInput(pdu: JsonObject, options?: CanonicalJsonOptions): string {
  return encodeCanonicalJsonWithout(pdu, NOT_IN_CONTENT_HASH, options);
}

/** The SHA-256 content hash of the full (unredacted) event, raw bytes. */
export function computeContentHashBytes(pdu: JsonObject, options?: CanonicalJsonOptions): Buffer {
  return sha256(contentHashInput(pdu, options));
}

/** The content hash as it goes into `hashes.sha256`: unpadded standard base64. */
export function computeContentHash(pdu: JsonObject, options?: CanonicalJsonOptions): string {
  return sha256Base64(contentHashInput(pdu, options));
}

/** The top-level keys the content hash leaves out. */
export const CONTENT_HASH_OMITTED_KEYS: ReadonlySet<string> = NOT_IN_CONTENT_HASH;

/**
 * Whether `hashes.sha256` matches the event's content. A missing or malformed hash, or an event
 * that cannot be encoded, is `false`. On `false` the receiver uses the redacted event (spec: the
 * hash check does not reject).
 */
export function checkContentHash(pdu: JsonObject, options?: CanonicalJsonOptions): boolean {
  const hashes = pdu.hashes;
  if (!isJsonObject(hashes) || typeof hashes.sha256 !== 'string') return false;
  let claimed: Buffer;
  let actual: Buffer;
  try {
    claimed = decodeBase64Lenient(hashes.sha256);
    actual = computeContentHashBytes(pdu, options);
  } catch {
    return false;
  }
  return claimed.equals(actual);
}

/**
 * The reference hash of an event that has ALREADY been redacted (`redactEvent`): SHA-256 of its
 * canonical JSON without `signatures` and `unsigned`. Raw bytes.
 */
export function computeReferenceHash(redactedPdu: JsonObject, options?: CanonicalJsonOptions): Buffer {
  return sha256(referenceHashInput(redactedPdu, options));
}

/** The canonical text a reference hash covers (the same bytes a server's signature covers). */
export function referenceHashInput(redactedPdu: JsonObject, options?: CanonicalJsonOptions): string {
  return encodeCanonicalJsonWithout(redactedPdu, NOT_IN_REFERENCE_HASH, options);
}

/** `$` + the reference hash, in the alphabet of the id format (v3: standard, v4+: URL-safe). */
export function eventIdFromReferenceHash(hash: Uint8Array, format: EventIdFormat): string {
  switch (format) {
    case 'v3':
      return `$${encodeBase64(hash)}`;
    case 'v4':
      return `$${encodeBase64Url(hash)}`;
    case 'v1':
      throw new Error('room versions 1 and 2 do not derive event ids from hashes');
  }
}

/** The event id for a reference hash input (`referenceHashInput`), hashing it. */
export function eventIdFromReferenceInput(input: string | Uint8Array, format: EventIdFormat): string {
  switch (format) {
    case 'v3':
      return `$${sha256Base64(input)}`;
    case 'v4':
      return `$${sha256Base64Url(input)}`;
    case 'v1':
      throw new Error('room versions 1 and 2 do not derive event ids from hashes');
  }
}

/** Canonical-JSON strictness for hashing events of `roomVersion`: relaxed for v1–5. */
export function canonicalOptionsFor(roomVersion: RoomVersion): CanonicalJsonOptions {
  return roomVersion.strictCanonicalJson ? STRICT : RELAXED;
}
const STRICT: CanonicalJsonOptions = Object.freeze({ relaxed: false });
const RELAXED: CanonicalJsonOptions = Object.freeze({ relaxed: true });

/**
 * The event id of `pdu` (full or redacted: the result is the same) for room versions 3+. Throws
 * for v1/v2, whose ids are chosen by the sending server and carried in the PDU, and
 * `CanonicalJsonError` if the event cannot be encoded.
 */
export function computeEventId(pdu: JsonObject, roomVersion: RoomVersion): string {
  if (roomVersion.eventIdFormat === 'v1') {
    throw new Error(`room version ${roomVersion.id} event ids are not hashes; read event_id`);
  }
  return eventIdFromReferenceInput(
    referenceHashInput(redactEvent(pdu, roomVersion), canonicalOptionsFor(roomVersion)),
    roomVersion.eventIdFormat,
  );
}

/**
 * The room id a v12 create event defines: `!` + its URL-safe reference hash, i.e. its event id
 * with `!` for `$`. Throws for room versions whose room ids are not derived this way.
 */
export function roomIdForCreateEvent(createPdu: JsonObject, roomVersion: RoomVersion): string {
  if (!roomVersion.roomIdFromCreateEvent) {
    throw new Error(`room version ${roomVersion.id} room ids are not derived from the create event`);
  }
  return `!${computeEventId(createPdu, roomVersion).slice(1)}`;
}

/** The v12 room id for a create event with the given event id. */
export function roomIdFromCreateEventId(createEventId: string): string {
  return `!${createEventId.slice(1)}`;
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * A fresh v1/v2 event id, `$<18 random letters and digits>:<serverName>`. It must go into the PDU
 * as `event_id` before the event is hashed and signed. `random` lets tests fix the bytes.
 */
export function generateLegacyEventId(serverName: string, random: (n: number) => Uint8Array = randomBytes): string {
  let local = '';
  while (local.length < 18) {
    for (const byte of random(24)) {
      // 248 = 4 × 62: reject the top bytes so every character is equally likely.
      if (byte < 248 && local.length < 18) local += ID_CHARS[byte % 62];
    }
  }
  return `$${local}:${serverName}`;
}
