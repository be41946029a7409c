// Ed25519 signing keys and signed JSON (spec appendices §Signing JSON, §Checking for a Signature).
//
// node:crypto does the cryptography. It wants keys as KeyObjects, which we build from the raw
// 32-byte seed or public key by prefixing the fixed DER header of an Ed25519 PKCS#8 / SPKI
// structure. Building a KeyObject costs far more than a signature check, so verification keys are
// cached by their bytes.

import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { decodeBase64Lenient, encodeBase64 } from './base64.js';
import { encodeCanonicalJsonWithout } from './canonical-json.js';
import type { JsonObject, JsonValue } from './json.js';
import { isJsonObject } from './json.js';

export interface SigningKey {
  /** `ed25519:<version>` */
  readonly keyId: string;
  /** The 32-byte Ed25519 seed (what Synapse's key file stores). */
  readonly seed: Uint8Array;
  /** The 32-byte raw public key. */
  readonly publicKey: Uint8Array;
  readonly privateKey: KeyObject;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

// DER headers: PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo for OID 1.3.101.112 (Ed25519).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Key versions: the part after `ed25519:`; the spec allows `[a-zA-Z0-9_]`. */
const KEY_VERSION = /^[A-Za-z0-9_]+$/;

export function isValidKeyVersion(version: string): boolean {
  return KEY_VERSION.test(version);
}

/** A signing key from its 32-byte seed. */
export function signingKeyFromSeed(version: string, seed: Uint8Array): SigningKey {
  if (!isValidKeyVersion(version)) {
    throw new SigningKeyError(`key version ${JSON.stringify(version)} must match [a-zA-Z0-9_]+`);
  }
  if (seed.length !== 32) throw new SigningKeyError(`an ed25519 seed is 32 bytes, not ${seed.length}`);
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length));
  return { keyId: `ed25519:${version}`, seed: new Uint8Array(seed), publicKey, privateKey };
}

/** A new random key. The default version looks like Synapse's: `a_` + 4 random letters. */
export function generateSigningKey(version?: string): SigningKey {
  return signingKeyFromSeed(version ?? `a_${randomLetters(4)}`, randomBytes(32));
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
function randomLetters(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const byte of randomBytes(n)) {
      if (byte < 208 && out.length < n) out += LETTERS[byte % 52]; // 208 = 4 × 52: no bias
    }
  }
  return out;
}

/**
 * Reads Synapse's signing key file: one key per line, `ed25519 <version> <unpadded base64 seed>`.
 * Blank lines and surrounding whitespace are tolerated; anything else is a `SigningKeyError`
 * naming the line.
 */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `signing key file line ${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) {
      throw new SigningKeyError(`${where}: expected "ed25519 <version> <base64 seed>"`);
    }
    const [algorithm, version, seedText] = parts as [string, string, string];
    if (algorithm !== 'ed25519') throw new SigningKeyError(`${where}: unsupported algorithm ${algorithm}`);
    if (!isValidKeyVersion(version)) {
      throw new SigningKeyError(`${where}: key version must match [a-zA-Z0-9_]+`);
    }
    let seed: Buffer;
    try {
      seed = decodeBase64Lenient(seedText);
    } catch {
      throw new SigningKeyError(`${where}: the seed is not base64`);
    }
    if (seed.length !== 32) {
      throw new SigningKeyError(`${where}: the seed must be 32 bytes, got ${seed.length}`);
    }
    if (keys.some((k) => k.keyId === `ed25519:${version}`)) {
      throw new SigningKeyError(`${where}: duplicate key ed25519:${version}`);
    }
    keys.push(signingKeyFromSeed(version, seed));
  }
  if (keys.length === 0) throw new SigningKeyError('signing key file holds no keys');
  return keys;
}

/** Writes keys in Synapse's signing key file format (with a trailing newline). */
export function formatSigningKeyFile(keys: readonly SigningKey[]): string {
  return keys.map((k) => `ed25519 ${k.keyId.slice('ed25519:'.length)} ${encodeBase64(k.seed)}\n`).join('');
}

/** A verify key's public bytes as unpadded base64 (as published in `/_matrix/key/v2/server`). */
export function encodePublicKey(key: SigningKey): string {
  return encodeBase64(key.publicKey);
}

// ---- public KeyObjects, cached ----

const PUBLIC_KEY_CACHE_LIMIT = 4096;
const publicKeyObjects = new Map<string, KeyObject>();

/**
 * The KeyObject for a raw 32-byte Ed25519 public key (or its base64, either alphabet). Cached:
 * the same key is verified over and over. Throws `SigningKeyError` for a malformed key.
 */
export function publicKeyObject(publicKey: Uint8Array | string): KeyObject {
  const bytes = typeof publicKey === 'string' ? decodeKeyText(publicKey) : Buffer.from(publicKey);
  if (bytes.length !== 32) throw new SigningKeyError(`an ed25519 public key is 32 bytes, not ${bytes.length}`);
  const cacheKey = bytes.toString('base64');
  const cached = publicKeyObjects.get(cacheKey);
  if (cached) return cached;
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, bytes]),
      format: 'der',
      type: 'spki',
    });
  } catch {
    throw new SigningKeyError('not a valid ed25519 public key');
  }
  if (publicKeyObjects.size >= PUBLIC_KEY_CACHE_LIMIT) {
    // Drop the oldest entry (Map keeps insertion order).
    publicKeyObjects.delete(publicKeyObjects.keys().next().value!);
  }
  publicKeyObjects.set(cacheKey, keyObject);
  return keyObject;
}

function decodeKeyText(text: string): Buffer {
  try {
    return decodeBase64Lenient(text);
  } catch {
    throw new SigningKeyError('public key is not base64');
  }
}

// ---- signing and verifying JSON ----

const NOT_SIGNED: ReadonlySet<string> = new Set(['signatures', 'unsigned']);

/** The bytes a signature covers: canonical JSON of `object` without `signatures` and `unsigned`. */
export function signedBytes(object: JsonObject): Buffer {
  return Buffer.from(encodeCanonicalJsonWithout(object, NOT_SIGNED), 'utf8');
}

/** Ed25519 signature of `bytes`, unpadded base64. */
export function signBytes(bytes: Uint8Array, key: SigningKey): string {
  return encodeBase64(sign(null, bytes, key.privateKey));
}

/**
 * A copy of `object` with `signatures[serverName][key.keyId]` set. Other signatures (other
 * servers' and this server's other keys) are kept. `object` is not modified; nested values other
 * than `signatures` are shared with it. Throws `CanonicalJsonError` if it cannot be encoded.
 */
export function signJson<T extends JsonObject>(object: T, serverName: string, key: SigningKey): T {
  const signature = signBytes(signedBytes(object), key);
  return withSignature(object, serverName, key.keyId, signature);
}

/** A copy of `object` with one more signature in `signatures`. */
export function withSignature<T extends JsonObject>(object: T, entity: string, keyId: string, signature: string): T {
  return { ...object, signatures: addSignature(object.signatures, entity, keyId, signature) };
}

/** A new `signatures` object: `existing` (if it is an object) plus one signature. */
export function addSignature(existing: JsonValue | undefined, entity: string, keyId: string, signature: string): JsonObject {
  const all = isJsonObject(existing) ? existing : {};
  const mine = isJsonObject(all[entity]) ? all[entity] : {};
  return { ...all, [entity]: { ...mine, [keyId]: signature } };
}

/**
 * Whether `object` carries a valid signature by `entity` with `keyId`, made with `publicKey` (raw
 * bytes, or base64 in either alphabet). Any malformation (missing signature, bad base64, bad key,
 * unencodable JSON) is `false`, never an exception.
 */
export function verifyJsonSignature(object: JsonObject, entity: string, keyId: string, publicKey: Uint8Array | string): boolean {
  const signatures = object.signatures;
  if (!isJsonObject(signatures)) return false;
  const byEntity = signatures[entity];
  if (!isJsonObject(byEntity)) return false;
  const signatureText = byEntity[keyId];
  if (typeof signatureText !== 'string') return false;
  try {
    const signature = decodeBase64Lenient(signatureText);
    if (signature.length !== 64) return false;
    return verify(null, signedBytes(object), publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** The `ed25519:*` key ids `entity` signed `object` with (the ones we know how to check). */
export function signatureKeyIds(object: JsonObject, entity: string): string[] {
  const signatures = object.signatures;
  if (!isJsonObject(signatures)) return [];
  const byEntity = signatures[entity];
  if (!isJsonObject(byEntity)) return [];
  return Object.keys(byEntity).filter((id) => id.startsWith('ed25519:'));
}
