// Server signing keys as other servers publish them (spec: server-server API §Retrieving server
// keys; `keys_server.yaml`, `keys_query.yaml`, `definitions/keys.yaml`; room versions
// §Signing key validity period, fragment `v5-signing-requirements`).
//
// - A `/_matrix/key/v2/server` answer must name the server we asked and be signed by its own
//   current keys (`verify_keys`); a notary's `/_matrix/key/v2/query` answer carries such
//   self-signed answers, each also signed by the notary.
// - A current key is valid until `valid_until_ts`, but never more than 7 days after we fetched it
//   ("Servers MUST use the lesser of this field and 7 days into the future", keys.yaml), so a
//   stolen key cannot be published as valid for years. Synapse stores `valid_until_ts` as given;
//   we follow the spec. The cap is applied once, when the answer is turned into `ServerVerifyKey`s,
//   so "valid until" stays a stored number.
// - An old key (`old_verify_keys`) is valid for events until its `expired_ts`, never for request
//   signatures.
// - Which moment a key must cover: for an event, its `origin_server_ts` from room version 5 on
//   (earlier versions ignore validity); for a request, now.

import { decodeBase64Lenient } from './base64.js';
import { isValidServerName } from './identifiers.js';
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';
import type { RoomVersion } from './room-versions.js';
import type { SigningKey } from './signing.js';
import { encodePublicKey, signJson, signatureKeyIds, verifyJsonSignature } from './signing.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A published `valid_until_ts` counts for at most this long after the answer was fetched. */
export const MAX_KEY_VALIDITY_AFTER_FETCH_MS = 7 * DAY;

/** The only signing algorithm the spec defines. */
export const ED25519_PREFIX = 'ed25519:';

/** A public key of another server (or ours), as the signature checks use it. */
export interface ServerVerifyKey {
  readonly serverName: string;
  /** `ed25519:<version>` */
  readonly keyId: string;
  /** The 32-byte public key as unpadded base64. */
  readonly publicKey: string;
  /**
   * Until when signatures by this key count: for a current key the lesser of `valid_until_ts`
   * and 7 days after it was fetched; for an old key its `expired_ts`.
   */
  readonly validUntilTs: number;
  /** From `old_verify_keys`: valid for events only, never for request signatures. */
  readonly old: boolean;
}

/** A checked `/_matrix/key/v2/server` answer (or one entry of a notary's answer). */
export interface ServerKeys {
  readonly serverName: string;
  /** `valid_until_ts` as published (not capped). */
  readonly validUntilTs: number;
  /** Current ed25519 keys: key id → unpadded base64. Other algorithms are left out. */
  readonly verifyKeys: ReadonlyMap<string, string>;
  /** Old ed25519 keys: key id → key and `expired_ts`. */
  readonly oldVerifyKeys: ReadonlyMap<string, { readonly publicKey: string; readonly expiredTs: number }>;
  /** The answer as received, kept whole for serving it again as a notary. */
  readonly json: JsonObject;
}

export type ServerKeysErrorCode =
  /** Not the shape `keys.yaml` defines. */
  | 'malformed'
  /** `server_name` is not the server that was asked. */
  | 'wrong-server'
  /** No signature by one of the server's own current keys. */
  | 'not-self-signed'
  /** A signature by one of its own current keys does not verify. */
  | 'bad-self-signature'
  /** A notary's entry lacks a signature by a known key of the notary. */
  | 'not-notary-signed'
  /** A signature by a known key of the notary does not verify. */
  | 'bad-notary-signature';

export interface ServerKeysError {
  readonly code: ServerKeysErrorCode;
  readonly message: string;
}

export type ServerKeysResult = { readonly ok: true; readonly keys: ServerKeys } | { readonly ok: false; readonly error: ServerKeysError };

function fail(code: ServerKeysErrorCode, message: string): { ok: false; error: ServerKeysError } {
  return { ok: false, error: { code, message } };
}

function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** A usable ed25519 public key: base64 (either alphabet, as some servers pad) of 32 bytes. */
function isPublicKeyText(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    return decodeBase64Lenient(value).length === 32;
  } catch {
    return false;
  }
}

function isEd25519KeyId(keyId: string): boolean {
  return keyId.startsWith(ED25519_PREFIX) && keyId.length > ED25519_PREFIX.length;
}

/**
 * Checks the shape of a Server Keys object (`definitions/keys.yaml`): `server_name`,
 * `verify_keys`, `signatures` and `valid_until_ts` required, `old_verify_keys` optional. Keys of
 * algorithms other than ed25519 are ignored; a malformed ed25519 key makes the whole answer
 * malformed. Signatures are not checked here.
 */
export function parseServerKeys(json: unknown): ServerKeysResult {
  if (!isJsonObject(json)) return fail('malformed', 'the answer is not a JSON object');
  const serverName = json.server_name;
  if (typeof serverName !== 'string' || !isValidServerName(serverName)) {
    return fail('malformed', '"server_name" is missing or not a server name');
  }
  if (!isTimestamp(json.valid_until_ts)) return fail('malformed', '"valid_until_ts" must be an integer');
  if (!isJsonObject(json.signatures)) return fail('malformed', '"signatures" must be an object');

  const verifyKeysJson = json.verify_keys;
  if (!isJsonObject(verifyKeysJson)) return fail('malformed', '"verify_keys" must be an object');
  const verifyKeys = new Map<string, string>();
  for (const keyId of Object.keys(verifyKeysJson)) {
    if (!isEd25519KeyId(keyId)) continue;
    const entry = verifyKeysJson[keyId];
    if (!isJsonObject(entry) || !isPublicKeyText(entry.key)) {
      return fail('malformed', `"verify_keys.${keyId}" must be {"key": <base64 ed25519 key>}`);
    }
    verifyKeys.set(keyId, entry.key);
  }

  const oldVerifyKeys = new Map<string, { publicKey: string; expiredTs: number }>();
  const oldJson = json.old_verify_keys;
  if (oldJson !== undefined) {
    if (!isJsonObject(oldJson)) return fail('malformed', '"old_verify_keys" must be an object');
    for (const keyId of Object.keys(oldJson)) {
      if (!isEd25519KeyId(keyId)) continue;
      const entry = oldJson[keyId];
      if (!isJsonObject(entry) || !isPublicKeyText(entry.key) || !isTimestamp(entry.expired_ts)) {
        return fail('malformed', `"old_verify_keys.${keyId}" must be {"key": <base64 ed25519 key>, "expired_ts": <integer>}`);
      }
      oldVerifyKeys.set(keyId, { publicKey: entry.key, expiredTs: entry.expired_ts });
    }
  }

  return { ok: true, keys: { serverName, validUntilTs: json.valid_until_ts, verifyKeys, oldVerifyKeys, json } };
}

/**
 * Whether the answer is signed by the server itself: at least one signature by a key in its
 * `verify_keys`, and every such signature valid (a bad one means the answer was tampered with).
 * Signatures by keys it does not list (a notary's, or its own old keys) are not looked at here.
 */
export function checkSelfSignature(keys: ServerKeys): ServerKeysError | undefined {
  let verified = 0;
  for (const keyId of signatureKeyIds(keys.json, keys.serverName)) {
    const publicKey = keys.verifyKeys.get(keyId);
    if (publicKey === undefined) continue;
    if (!verifyJsonSignature(keys.json, keys.serverName, keyId, publicKey)) {
      return { code: 'bad-self-signature', message: `the signature of ${keys.serverName} by ${keyId} does not verify` };
    }
    verified++;
  }
  if (verified === 0) {
    return { code: 'not-self-signed', message: `the keys of ${keys.serverName} are not signed by any key it lists` };
  }
  return undefined;
}

/**
 * Checks an answer of `GET /_matrix/key/v2/server` from `serverName`: the shape, that it is
 * `serverName`'s answer, and its self-signature.
 */
export function validateServerKeysResponse(json: unknown, serverName: string): ServerKeysResult {
  const parsed = parseServerKeys(json);
  if (!parsed.ok) return parsed;
  if (parsed.keys.serverName !== serverName) {
    return fail('wrong-server', `asked ${serverName} for its keys, the answer is for ${parsed.keys.serverName}`);
  }
  const problem = checkSelfSignature(parsed.keys);
  return problem ? { ok: false, error: problem } : parsed;
}

export interface NotaryOptions {
  readonly notaryServerName: string;
  /**
   * The notary's public keys (key id → base64), as configured in `trusted_key_servers`. Every
   * entry must be signed by at least one of them, and every signature by one of them must verify.
   * `undefined` skips the notary's signature (Synapse's behaviour for a trusted key server
   * configured without `verify_keys`, which then relies on TLS alone); the entries' own
   * self-signatures are always checked.
   */
  readonly notaryVerifyKeys: Readonly<Record<string, string>> | undefined;
}

export interface NotaryResult {
  /** Entries that passed every check. */
  readonly accepted: readonly ServerKeys[];
  /** Entries refused, with the reason; the others are still good (as Synapse continues). */
  readonly rejected: readonly { readonly index: number; readonly serverName: string | undefined; readonly error: ServerKeysError }[];
}

/**
 * Checks a notary's answer to `/_matrix/key/v2/query`: `{"server_keys": [...]}`, each entry a
 * Server Keys object signed by the server it describes and by the notary. `undefined` if the
 * answer as a whole is not of that shape.
 */
export function validateNotaryResponse(json: unknown, options: NotaryOptions): NotaryResult | undefined {
  if (!isJsonObject(json) || !Array.isArray(json.server_keys)) return undefined;
  const accepted: ServerKeys[] = [];
  const rejected: { index: number; serverName: string | undefined; error: ServerKeysError }[] = [];
  json.server_keys.forEach((entry, index) => {
    const serverName = isJsonObject(entry) && typeof entry.server_name === 'string' ? entry.server_name : undefined;
    const parsed = parseServerKeys(entry);
    if (!parsed.ok) {
      rejected.push({ index, serverName, error: parsed.error });
      return;
    }
    const problem = checkNotarySignature(parsed.keys.json, options) ?? checkSelfSignature(parsed.keys);
    if (problem) rejected.push({ index, serverName, error: problem });
    else accepted.push(parsed.keys);
  });
  return { accepted, rejected };
}

function checkNotarySignature(json: JsonObject, options: NotaryOptions): ServerKeysError | undefined {
  const known = options.notaryVerifyKeys;
  if (known === undefined) return undefined;
  let verified = 0;
  for (const keyId of signatureKeyIds(json, options.notaryServerName)) {
    const publicKey = Object.hasOwn(known, keyId) ? known[keyId] : undefined;
    if (publicKey === undefined) continue;
    if (!verifyJsonSignature(json, options.notaryServerName, keyId, publicKey)) {
      return { code: 'bad-notary-signature', message: `the signature of notary ${options.notaryServerName} by ${keyId} does not verify` };
    }
    verified++;
  }
  if (verified === 0) {
    return { code: 'not-notary-signed', message: `not signed by a known key of notary ${options.notaryServerName}` };
  }
  return undefined;
}

/**
 * The keys of a checked answer as `ServerVerifyKey`s, with the 7-day cap on current keys counted
 * from `fetchedAtTs` (when we, or the notary for a notary's answer, received it: we use our own
 * fetch time, which is never earlier). A key listed both as current and as old is taken as old:
 * the server says it has expired (Synapse does the same).
 */
export function verifyKeysOf(keys: ServerKeys, fetchedAtTs: number): ServerVerifyKey[] {
  const cap = fetchedAtTs + MAX_KEY_VALIDITY_AFTER_FETCH_MS;
  const out: ServerVerifyKey[] = [];
  for (const [keyId, publicKey] of keys.verifyKeys) {
    if (keys.oldVerifyKeys.has(keyId)) continue;
    out.push({ serverName: keys.serverName, keyId, publicKey, validUntilTs: Math.min(keys.validUntilTs, cap), old: false });
  }
  for (const [keyId, { publicKey, expiredTs }] of keys.oldVerifyKeys) {
    out.push({ serverName: keys.serverName, keyId, publicKey, validUntilTs: Math.min(expiredTs, cap), old: true });
  }
  return out;
}

/**
 * Combines two sightings of the same key (same server and id), keeping the one valid for longer
 * (as Synapse: a notary's answer can list a key both from an old and a new answer). Two
 * different public keys under one id: the newer sighting wins, being what the server says now.
 */
export function mergeVerifyKey(existing: ServerVerifyKey | undefined, incoming: ServerVerifyKey): ServerVerifyKey {
  if (!existing || existing.publicKey !== incoming.publicKey) return incoming;
  return incoming.validUntilTs >= existing.validUntilTs ? incoming : existing;
}

// ---- which moment a key must cover ----

/** One key a signature check needs. */
export interface KeyRequest {
  readonly serverName: string;
  readonly keyId: string;
  /** The key must be valid until at least this time (0: any known key will do). */
  readonly minimumValidUntilTs: number;
}

/**
 * The body of `POST /_matrix/key/v2/query` asking a notary for `requests`. Each key carries its
 * `minimum_valid_until_ts`, which "servers MUST set" so the notary refreshes a key it holds only
 * for a shorter time (`v5-signing-requirements`). The same key asked twice is asked with the
 * later time.
 */
export function buildKeyQueryBody(requests: Iterable<KeyRequest>): JsonObject {
  const byServer = new Map<string, Map<string, number>>();
  for (const { serverName, keyId, minimumValidUntilTs } of requests) {
    const keys = byServer.get(serverName) ?? new Map<string, number>();
    keys.set(keyId, Math.max(minimumValidUntilTs, keys.get(keyId) ?? minimumValidUntilTs));
    byServer.set(serverName, keys);
  }
  const serverKeys: JsonObject = {};
  for (const [serverName, keys] of byServer) {
    const criteria: JsonObject = {};
    for (const [keyId, minimum] of keys) criteria[keyId] = { minimum_valid_until_ts: minimum };
    serverKeys[serverName] = criteria;
  }
  return { server_keys: serverKeys };
}

/**
 * The time a key must be valid until to check an event's signature (`v5-signing-requirements`):
 * the event's `origin_server_ts` in room versions 5 and later; 0 (any known key) before, where
 * `valid_until_ts` "MUST be ignored".
 */
export function minimumKeyValidityForEvent(originServerTs: number, roomVersion: RoomVersion): number {
  return roomVersion.enforceKeyValidity ? originServerTs : 0;
}

/** Whether `key` may be used for a signature on an event that needs validity until `minimumValidUntilTs`. */
export function isKeyUsableForEvent(key: ServerVerifyKey, minimumValidUntilTs: number): boolean {
  return key.validUntilTs >= minimumValidUntilTs;
}

/** Whether `key` may be used for a request signature at `now`: current keys only, valid now. */
export function isKeyUsableForRequest(key: ServerVerifyKey, now: number): boolean {
  return !key.old && key.validUntilTs >= now;
}

// ---- publishing our own keys ----

export interface OldVerifyKey {
  /** `ed25519:<version>` */
  readonly keyId: string;
  /** Unpadded base64 public key. */
  readonly publicKey: string;
  readonly expiredTs: number;
}

export interface OwnServerKeysOptions {
  readonly serverName: string;
  /** The current keys: published in `verify_keys`, and each signs the answer. */
  readonly signingKeys: readonly SigningKey[];
  /** Retired keys (`old_signing_keys`): published in `old_verify_keys` for old events. */
  readonly oldKeys?: readonly OldVerifyKey[];
  readonly now: number;
  /**
   * How long the answer is valid (`key_refresh_interval`, Synapse's default 1 day). The spec asks
   * that answers not expire within an hour of being served; `shouldRebuildOwnServerKeys` keeps
   * them at least half this interval ahead.
   */
  readonly keyRefreshIntervalMs: number;
}

/** Our `GET /_matrix/key/v2/server` answer, signed by every current key. */
export function buildOwnServerKeys(options: OwnServerKeysOptions): JsonObject {
  if (options.signingKeys.length === 0) throw new Error('a server publishes at least one signing key');
  const verifyKeys: JsonObject = {};
  for (const key of options.signingKeys) verifyKeys[key.keyId] = { key: encodePublicKey(key) };
  const oldVerifyKeys: JsonObject = {};
  for (const old of options.oldKeys ?? []) {
    if (Object.hasOwn(verifyKeys, old.keyId)) continue; // a current key is not also an old one
    oldVerifyKeys[old.keyId] = { key: old.publicKey, expired_ts: old.expiredTs };
  }
  let body: JsonObject = {
    server_name: options.serverName,
    valid_until_ts: options.now + options.keyRefreshIntervalMs,
    verify_keys: verifyKeys,
    old_verify_keys: oldVerifyKeys,
  };
  for (const key of options.signingKeys) body = signJson(body, options.serverName, key);
  return body;
}

/**
 * Whether a built answer should be rebuilt before serving: once less than half the refresh
 * interval is left (as Synapse), so what we serve never expires soon after.
 */
export function shouldRebuildOwnServerKeys(validUntilTs: number, keyRefreshIntervalMs: number, now: number): boolean {
  return validUntilTs < now + keyRefreshIntervalMs / 2;
}

/** Our own keys as `ServerVerifyKey`s, so our own events and requests check without a fetch. */
export function ownVerifyKeys(
  serverName: string,
  signingKeys: readonly SigningKey[],
  oldKeys: readonly OldVerifyKey[] = [],
): ServerVerifyKey[] {
  return [
    ...signingKeys.map((k) => ({
      serverName,
      keyId: k.keyId,
      publicKey: encodePublicKey(k),
      validUntilTs: Number.MAX_SAFE_INTEGER,
      old: false,
    })),
    ...oldKeys.map((k) => ({ serverName, keyId: k.keyId, publicKey: k.publicKey, validUntilTs: k.expiredTs, old: true })),
  ];
}

// ---- acting as a notary ----

/**
 * A key query: server name → the key ids asked for, each with the time it should be valid until.
 * An empty map asks for every key of that server.
 */
export type KeyQuery = ReadonlyMap<string, ReadonlyMap<string, number>>;

export type KeyQueryResult = { readonly ok: true; readonly query: KeyQuery } | { readonly ok: false; readonly message: string };

/**
 * Reads a `POST /_matrix/key/v2/query` body: `{"server_keys": {server: {keyId:
 * {"minimum_valid_until_ts"?}}}}`. A missing `minimum_valid_until_ts` means `now` (keys_query.yaml:
 * "the notary server MUST use the current time").
 */
export function parseKeyQueryRequest(body: unknown, now: number): KeyQueryResult {
  const serverKeys = isJsonObject(body) ? body.server_keys : undefined;
  if (!isJsonObject(serverKeys)) return { ok: false, message: '"server_keys" must be an object' };
  const query = new Map<string, Map<string, number>>();
  for (const serverName of Object.keys(serverKeys)) {
    const keys = serverKeys[serverName];
    if (!isValidServerName(serverName)) return { ok: false, message: `not a server name: ${JSON.stringify(serverName)}` };
    if (!isJsonObject(keys)) return { ok: false, message: `"server_keys.${serverName}" must be an object` };
    const wanted = new Map<string, number>();
    for (const keyId of Object.keys(keys)) {
      const criteria = keys[keyId];
      if (!isJsonObject(criteria)) return { ok: false, message: `"server_keys.${serverName}.${keyId}" must be an object` };
      const minimum = criteria.minimum_valid_until_ts;
      if (minimum !== undefined && minimum !== null && !isTimestamp(minimum)) {
        return { ok: false, message: `"minimum_valid_until_ts" of ${serverName} ${keyId} must be an integer` };
      }
      wanted.set(keyId, isTimestamp(minimum) ? minimum : now);
    }
    query.set(serverName, wanted);
  }
  return { ok: true, query };
}

/**
 * The `minimum_valid_until_ts` query parameter of `GET /_matrix/key/v2/query/{serverName}`:
 * `now` when absent, `undefined` when present but not an integer (a 400).
 */
export function parseMinimumValidUntilParam(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return now;
  if (!/^-?[0-9]{1,16}$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Whether a notary may serve a stored answer without fetching it again: it must be valid until
 * the time asked for, and be in the first half of its lifetime (keys_server.yaml: "Intermediate
 * notary servers should cache a response for half of its lifetime"). When a refetch fails, the
 * stored answer is served anyway ("continue to return the last response they received").
 */
export function isStoredKeysAnswerFresh(
  stored: { readonly validUntilTs: number; readonly fetchedAtTs: number },
  minimumValidUntilTs: number,
  now: number,
): boolean {
  if (stored.validUntilTs < minimumValidUntilTs) return false;
  const halfLife = stored.fetchedAtTs + (stored.validUntilTs - stored.fetchedAtTs) / 2;
  return now < halfLife;
}

/** A stored answer as a notary serves it: the origin's JSON with the notary's signatures added. */
export function notarise(json: JsonObject, notaryServerName: string, signingKeys: readonly SigningKey[]): JsonObject {
  let signed = json;
  for (const key of signingKeys) signed = signJson(signed, notaryServerName, key);
  return signed;
}
