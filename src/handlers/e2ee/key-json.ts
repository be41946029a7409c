// The key objects clients publish (S:data/api/client-server/definitions/{device_keys,
// one_time_keys,cross_signing_key}.yaml): structural checks with Synapse's errors for bad input
// (400 M_BAD_JSON), signature checks (400 M_INVALID_SIGNATURE), and the comparisons the endpoints
// make between what is uploaded and what is stored.

import { encodeCanonicalJson, encodeCanonicalJsonWithout } from '../../core/canonical-json.js';
import { MAX_IDENTIFIER_BYTES, utf8Length } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { verifyJsonSignature } from '../../core/signing.js';
import { Errors, type MatrixError } from '../../errors.js';

export const ED25519 = 'ed25519';

export function invalidSignature(message = 'Invalid signature'): MatrixError {
  return Errors.invalidSignature(message);
}

/** A key as stored: canonical JSON (signatures cover the canonical form). Malformed JSON numbers
 * (floats, huge integers) cannot be signed, so they are bad input. */
export function canonicalKeyJson(value: JsonValue, what: string): string {
  try {
    return encodeCanonicalJson(value);
  } catch {
    throw Errors.badJson(`${what} is not valid canonical JSON`);
  }
}

function isStringMap(value: unknown): value is Record<string, string> {
  return isJsonObject(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** `signatures`: user id → key id → signature. */
function checkSignaturesShape(value: unknown, what: string): void {
  if (!isJsonObject(value) || !Object.values(value).every(isStringMap))
    throw Errors.badJson(`${what}.signatures must map user ids to key ids to signatures`);
}

/**
 * `device_keys` of `/keys/upload`: well formed, for the requester's own device, and signed by the
 * device's own ed25519 key (the key other users will trust it by).
 */
export function checkDeviceKeys(keys: unknown, userId: string, deviceId: string): JsonObject {
  if (!isJsonObject(keys)) throw Errors.badJson('device_keys must be an object');
  if (typeof keys.user_id !== 'string' || typeof keys.device_id !== 'string')
    throw Errors.badJson('device_keys needs user_id and device_id strings');
  if (!Array.isArray(keys.algorithms) || !keys.algorithms.every((a) => typeof a === 'string'))
    throw Errors.badJson('device_keys.algorithms must be a list of strings');
  if (!isStringMap(keys.keys)) throw Errors.badJson('device_keys.keys must map key ids to keys');
  checkSignaturesShape(keys.signatures, 'device_keys');
  if (keys.user_id !== userId) throw Errors.badJson('device_keys.user_id does not match the authenticated user');
  if (keys.device_id !== deviceId) throw Errors.badJson("device_keys.device_id does not match the authenticated user's device");
  const keyId = `${ED25519}:${deviceId}`;
  const publicKey = keys.keys[keyId];
  if (publicKey === undefined) throw invalidSignature(`device_keys has no ${keyId} key to verify it with`);
  if (!verifyJsonSignature(keys, userId, keyId, publicKey)) throw invalidSignature(`device_keys are not signed by ${keyId}`);
  return keys;
}

export interface UploadedKey {
  algorithm: string;
  keyId: string;
  key: JsonValue;
}

/**
 * `one_time_keys` / `fallback_keys`: `<algorithm>:<key id>` → a key string (unsigned algorithms)
 * or a key object `{key, signatures, fallback?}`.
 */
export function checkKeyMap(value: unknown, field: string): UploadedKey[] {
  if (value === undefined || value === null) return [];
  if (!isJsonObject(value)) throw Errors.badJson(`${field} must be an object`);
  const keys: UploadedKey[] = [];
  for (const [name, key] of Object.entries(value)) {
    const parts = name.split(':');
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw Errors.badJson(`Invalid ${field} key ${JSON.stringify(name)}: expected "<algorithm>:<key id>"`);
    // Key names are opaque, and short (Olm's are a few characters); the 255 bytes of any
    // identifier keep them, with the user and device, within a database index entry.
    if (utf8Length(name) > MAX_IDENTIFIER_BYTES) throw Errors.badJson(`Invalid ${field} key: longer than ${MAX_IDENTIFIER_BYTES} bytes`);
    if (typeof key !== 'string') {
      if (!isJsonObject(key) || typeof key.key !== 'string')
        throw Errors.badJson(`${field}.${name} must be a key string or an object with a key`);
      checkSignaturesShape(key.signatures, `${field}.${name}`);
      if (key.fallback !== undefined && typeof key.fallback !== 'boolean')
        throw Errors.badJson(`${field}.${name}.fallback must be a boolean`);
    }
    keys.push({ algorithm: parts[0], keyId: parts[1], key });
  }
  return keys;
}

/** Whether two one-time keys are the same key: signatures may differ between upload attempts. */
export function sameOneTimeKey(storedJson: string, uploaded: JsonValue): boolean {
  const stored = JSON.parse(storedJson) as JsonValue;
  if (!isJsonObject(stored) || !isJsonObject(uploaded)) return encodeCanonicalJson(stored) === encodeCanonicalJson(uploaded);
  const without = new Set(['signatures']);
  return encodeCanonicalJsonWithout(stored, without) === encodeCanonicalJsonWithout(uploaded, without);
}

/** Whether a signed copy of a key is the stored key (apart from signatures and `unsigned`). */
export function sameSignedObject(stored: JsonObject, signed: JsonObject): boolean {
  const without = new Set(['signatures', 'unsigned']);
  try {
    return encodeCanonicalJsonWithout(stored, without) === encodeCanonicalJsonWithout(signed, without);
  } catch {
    return false;
  }
}

export interface CrossSigningKey {
  json: JsonObject;
  /** The public key's name, `ed25519:<public key>`. */
  keyId: string;
  /** The part after `ed25519:`, which signatures and devices use as its id. */
  publicKey: string;
  /** The key itself, unpadded base64. */
  verifyKey: string;
}

/** A cross-signing key: the user's, for `usage`, with exactly one ed25519 public key. */
export function checkCrossSigningKey(value: unknown, userId: string, usage: string): CrossSigningKey {
  if (!isJsonObject(value)) throw Errors.badJson(`The ${usage} key must be an object`);
  const invalid = () => Errors.invalidParam(`Invalid ${usage} key`);
  if (value.user_id !== userId || !Array.isArray(value.usage) || !value.usage.includes(usage) || !isJsonObject(value.keys)) throw invalid();
  const entries = Object.entries(value.keys);
  if (entries.length !== 1) throw invalid();
  const [keyId, verifyKey] = entries[0]!;
  // The key's name is its public key (43 characters): it doubles as a device id, so no longer than an id.
  if (
    typeof verifyKey !== 'string' ||
    !keyId.startsWith(`${ED25519}:`) ||
    keyId.length === ED25519.length + 1 ||
    utf8Length(keyId) > MAX_IDENTIFIER_BYTES
  )
    throw invalid();
  if (value.signatures !== undefined) checkSignaturesShape(value.signatures, `The ${usage} key`);
  return { json: value, keyId, publicKey: keyId.slice(ED25519.length + 1), verifyKey };
}

/** Whether `object` carries a valid signature by `signer`'s key `keyId`. */
export function signedBy(object: JsonObject, signer: string, keyId: string, verifyKey: string): boolean {
  return verifyJsonSignature(object, signer, keyId, verifyKey);
}

/** Adds signatures (signer → key id → signature) into a key object's `signatures`. */
export function withSignatures(
  json: JsonObject,
  signatures: ReadonlyArray<{ signer: string; keyId: string; signature: string }>,
): JsonObject {
  if (signatures.length === 0) return json;
  const merged: Record<string, Record<string, JsonValue>> = {};
  if (isJsonObject(json.signatures))
    for (const [signer, byKey] of Object.entries(json.signatures)) if (isJsonObject(byKey)) merged[signer] = { ...byKey };
  for (const { signer, keyId, signature } of signatures) (merged[signer] ??= {})[keyId] = signature;
  return { ...json, signatures: merged };
}
