// Keys as a client makes them, for the end-to-end encryption tests and the `e2ee` benchmark:
// ed25519 key pairs, signed device keys, signed one-time and fallback keys, and cross-signing keys.
// Pure (no server): the tests' upload helpers are in test/api/e2ee-fixtures.ts.

import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { encodeBase64 } from '../../src/core/base64.js';
import type { JsonObject } from '../../src/core/json.js';
import { signedBytes } from '../../src/core/signing.js';

export interface Ed25519 {
  /** Unpadded base64 of the 32-byte public key. */
  publicKey: string;
  privateKey: KeyObject;
}

export function ed25519(): Ed25519 {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { publicKey: encodeBase64(raw), privateKey };
}

/** A copy of `object` with `signer`'s signature by `keyId` added. */
export function signed<T extends JsonObject>(object: T, signer: string, keyId: string, key: Ed25519): T {
  const signature = encodeBase64(sign(null, signedBytes(object), key.privateKey));
  const signatures = { ...((object.signatures as Record<string, Record<string, string>> | undefined) ?? {}) };
  signatures[signer] = { ...signatures[signer], [keyId]: signature };
  return { ...object, signatures };
}

/** Device keys for the user's device, signed by the device's ed25519 key. */
export function deviceKeysOf(user: { userId: string; deviceId: string }, key = ed25519()): JsonObject {
  return signed(
    {
      user_id: user.userId,
      device_id: user.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`ed25519:${user.deviceId}`]: key.publicKey, [`curve25519:${user.deviceId}`]: encodeBase64(randomBytes(32)) },
    },
    user.userId,
    `ed25519:${user.deviceId}`,
    key,
  );
}

/** `count` signed_curve25519 one-time keys with ids `<prefix>0`, `<prefix>1`, ... */
export function oneTimeKeys(
  device: { userId: string; deviceId: string; key: Ed25519 },
  count: number,
  prefix = 'otk',
  fallback = false,
): Record<string, JsonObject> {
  const keys: Record<string, JsonObject> = {};
  for (let i = 0; i < count; i++) {
    const body: JsonObject = { key: encodeBase64(randomBytes(32)), ...(fallback ? { fallback: true } : {}) };
    keys[`signed_curve25519:${prefix}${i}`] = signed(body, device.userId, `ed25519:${device.deviceId}`, device.key);
  }
  return keys;
}

export interface CrossSigningSet {
  master: Ed25519;
  selfSigning: Ed25519;
  userSigning: Ed25519;
  body: { master_key: JsonObject; self_signing_key: JsonObject; user_signing_key: JsonObject };
}

export function crossSigningKey(userId: string, usage: string, key: Ed25519): JsonObject {
  return { user_id: userId, usage: [usage], keys: { [`ed25519:${key.publicKey}`]: key.publicKey } };
}

/** A master key and self-signing and user-signing keys signed by it. */
export function crossSigningSet(userId: string): CrossSigningSet {
  const master = ed25519();
  const selfSigning = ed25519();
  const userSigning = ed25519();
  const masterId = `ed25519:${master.publicKey}`;
  return {
    master,
    selfSigning,
    userSigning,
    body: {
      master_key: crossSigningKey(userId, 'master', master),
      self_signing_key: signed(crossSigningKey(userId, 'self_signing', selfSigning), userId, masterId, master),
      user_signing_key: signed(crossSigningKey(userId, 'user_signing', userSigning), userId, masterId, master),
    },
  };
}
