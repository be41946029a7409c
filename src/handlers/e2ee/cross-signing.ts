// Cross-signing (S:data/api/client-server/cross_signing.yaml; end_to_end_encryption.md
// §Cross-signing; `Syn:synapse/handlers/e2e_keys.py` `upload_signing_keys_for_user`,
// `upload_signatures_for_device_keys`).
//
// The checks are pure functions over the upload and what is stored; the device_lists writer runs
// them under its per-user queue and stores the result. `CrossSigningHandler` answers the one
// question the route asks before that: does this upload need user-interactive authentication?

import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors, MatrixError } from '../../errors.js';
import type { CrossSigningKeyRow, CrossSigningKeyType, CrossSigningStore, SignatureRow } from '../../storage/cross-signing-store.js';
import type { DeviceKeysRow } from '../../storage/device-keys-store.js';
import {
  canonicalKeyJson,
  checkCrossSigningKey,
  ED25519,
  invalidSignature,
  sameSignedObject,
  signedBy,
  type CrossSigningKey,
} from './key-json.js';

/** The keys of `/keys/device_signing/upload`, by the body's field names. */
export interface SigningKeysUpload {
  master_key?: JsonObject;
  self_signing_key?: JsonObject;
  user_signing_key?: JsonObject;
}

const FIELDS: ReadonlyArray<readonly [keyof SigningKeysUpload, CrossSigningKeyType]> = [
  ['master_key', 'master'],
  ['self_signing_key', 'self_signing'],
  ['user_signing_key', 'user_signing'],
];

/** The body's keys, each an object if present (400 M_BAD_JSON otherwise). */
export function signingKeysOf(body: JsonObject): SigningKeysUpload {
  const upload: SigningKeysUpload = {};
  for (const [field] of FIELDS) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (!isJsonObject(value)) throw Errors.badJson(`${field} must be an object`);
    upload[field] = value;
  }
  return upload;
}

function storedKey(row: CrossSigningKeyRow | undefined, userId: string, usage: string): CrossSigningKey | undefined {
  return row ? checkCrossSigningKey(JSON.parse(row.key_json) as unknown, userId, usage) : undefined;
}

/**
 * The keys to store: well formed, the user's, and — for the self-signing and user-signing keys —
 * signed by the master key uploaded with them or, failing that, the stored one.
 */
export function checkSigningKeysUpload(
  userId: string,
  upload: SigningKeysUpload,
  stored: ReadonlyMap<CrossSigningKeyType, CrossSigningKeyRow>,
): Array<{ type: CrossSigningKeyType; key: CrossSigningKey }> {
  const master = upload.master_key
    ? checkCrossSigningKey(upload.master_key, userId, 'master')
    : storedKey(stored.get('master'), userId, 'master');
  if (!master) throw Errors.missingParam('No master key available');
  const accepted: Array<{ type: CrossSigningKeyType; key: CrossSigningKey }> = [];
  if (upload.master_key) accepted.push({ type: 'master', key: master });
  for (const [field, type] of FIELDS.slice(1)) {
    const value = upload[field];
    if (!value) continue;
    const key = checkCrossSigningKey(value, userId, type);
    if (!signedBy(key.json, userId, master.keyId, master.verifyKey)) throw invalidSignature(`Invalid signature on ${type} key`);
    accepted.push({ type, key });
  }
  return accepted;
}

function failureOf(err: unknown): { errcode: string; error: string } {
  if (err instanceof MatrixError) return { errcode: err.errcode, error: err.message };
  throw err;
}

function notFound(message: string): MatrixError {
  return Errors.notFound(message);
}

function keyMismatch(): MatrixError {
  return Errors.invalidParam('The signed object does not match the stored key');
}

/**
 * `/keys/signatures/upload`: which signatures to store and which to refuse. The user may sign
 * their own devices with their self-signing key, their own master key with their devices, and
 * other users' master keys with their user-signing key. A signed object must be the stored key
 * (apart from its signatures). A malformed body is a 400; a bad signature only fails its entry.
 */
export function checkSignedUploads(
  userId: string,
  body: JsonObject,
  crossSigningKeys: readonly CrossSigningKeyRow[],
  ownDevices: readonly DeviceKeysRow[],
): { accepted: SignatureRow[]; failures: Record<string, Record<string, { errcode: string; error: string }>> } {
  for (const [target, byKey] of Object.entries(body)) {
    if (!isJsonObject(byKey) || !Object.values(byKey).every(isJsonObject))
      throw Errors.badJson(`${target} must map key ids to signed objects`);
  }
  const keyOf = (owner: string, type: CrossSigningKeyType) => {
    const row = crossSigningKeys.find((k) => k.user_id === owner && k.key_type === type);
    return row ? { row, key: storedKey(row, owner, type)! } : undefined;
  };
  const devices = new Map(ownDevices.map((d) => [d.device_id, JSON.parse(d.key_json) as JsonObject]));
  const accepted: SignatureRow[] = [];
  const failures: Record<string, Record<string, { errcode: string; error: string }>> = {};
  const fail = (target: string, keyId: string, err: unknown) => ((failures[target] ??= {})[keyId] = failureOf(err));

  for (const [target, byKey] of Object.entries(body) as Array<[string, Record<string, JsonObject>]>) {
    for (const [keyId, signed] of Object.entries(byKey)) {
      try {
        const signatures = isJsonObject(signed.signatures) ? signed.signatures[userId] : undefined;
        if (!isJsonObject(signatures)) throw invalidSignature();
        if (target === userId) {
          const master = keyOf(userId, 'master');
          if (master && keyId === master.key.publicKey) {
            // The user's devices vouching for their master key.
            for (const [signingKeyId, signature] of Object.entries(signatures)) {
              const deviceId = signingKeyId.startsWith(`${ED25519}:`) ? signingKeyId.slice(ED25519.length + 1) : undefined;
              const deviceKey =
                deviceId === undefined ? undefined : (devices.get(deviceId)?.keys as JsonObject | undefined)?.[signingKeyId];
              if (typeof deviceKey !== 'string' || typeof signature !== 'string') throw invalidSignature();
              if (!sameSignedObject(master.key.json, signed)) throw keyMismatch();
              if (!signedBy(signed, userId, signingKeyId, deviceKey)) throw invalidSignature();
              accepted.push({ user_id: userId, key_id: signingKeyId, target_user_id: userId, target_device_id: keyId, signature });
            }
            continue;
          }
          const selfSigning = keyOf(userId, 'self_signing');
          if (!selfSigning) throw notFound('No self-signing key found');
          const signature = signatures[selfSigning.key.keyId];
          if (typeof signature !== 'string') throw invalidSignature();
          const device = devices.get(keyId);
          if (!device) throw notFound('Unknown device');
          if (!sameSignedObject(device, signed)) throw keyMismatch();
          if (!signedBy(signed, userId, selfSigning.key.keyId, selfSigning.key.verifyKey)) throw invalidSignature();
          accepted.push({ user_id: userId, key_id: selfSigning.key.keyId, target_user_id: userId, target_device_id: keyId, signature });
        } else {
          const userSigning = keyOf(userId, 'user_signing');
          if (!userSigning) throw notFound('No user-signing key found');
          const master = keyOf(target, 'master');
          if (!master || master.key.publicKey !== keyId) throw notFound('Unknown device');
          const signature = signatures[userSigning.key.keyId];
          if (typeof signature !== 'string') throw invalidSignature();
          if (!sameSignedObject(master.key.json, signed)) throw keyMismatch();
          if (!signedBy(signed, userId, userSigning.key.keyId, userSigning.key.verifyKey)) throw invalidSignature();
          accepted.push({ user_id: userId, key_id: userSigning.key.keyId, target_user_id: target, target_device_id: keyId, signature });
        }
      } catch (err) {
        fail(target, keyId, err);
      }
    }
  }
  return { accepted, failures };
}

export class CrossSigningHandler {
  constructor(private readonly store: CrossSigningStore) {}

  /**
   * Whether the upload must go through user-interactive authentication: once the user has a
   * master key, any key that differs from the stored one (a replacement, or a new key) needs it
   * (cross_signing.yaml; Synapse's `has_different_keys`). The first upload, and a retry of an
   * upload that already succeeded, need none.
   */
  async requiresAuthentication(userId: string, upload: SigningKeysUpload): Promise<boolean> {
    const stored = new Map((await this.store.keysOf([userId])).map((row) => [row.key_type, row.key_json]));
    return stored.has('master') && this.changes(stored, upload);
  }

  /** Whether the upload would change anything (a retry of a stored upload does not). */
  async changesAnything(userId: string, upload: SigningKeysUpload): Promise<boolean> {
    const stored = new Map((await this.store.keysOf([userId])).map((row) => [row.key_type, row.key_json]));
    return this.changes(stored, upload);
  }

  private changes(stored: ReadonlyMap<CrossSigningKeyType, string>, upload: SigningKeysUpload): boolean {
    return FIELDS.some(([field, type]) => {
      const key = upload[field];
      return key !== undefined && stored.get(type) !== canonicalKeyJson(key, field);
    });
  }
}
