// Device keys for other users: `/keys/upload` (checked here, stored by the device_lists writer),
// `/keys/query`, `/keys/claim` and `/keys/changes` (S:data/api/client-server/keys.yaml;
// `Syn:synapse/handlers/e2e_keys.py`). Users of other servers need federation, which comes later:
// they are left out of the answers, and no server is reported as failing.

import { isValidUserId } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { CrossSigningKeyType, CrossSigningStore, SignatureRow } from '../../storage/cross-signing-store.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { DeviceKeysStore } from '../../storage/device-keys-store.js';
import { clampPositions, decodeSyncToken } from '../../streams/streams.js';
import type { Notifier } from '../../streams/notifier.js';
import { isLocalUser } from '../ephemeral/checks.js';
import type { Requester } from '../kernel/requester.js';
import {
  oneTimeKeyCounts,
  type DeviceListChanges,
  type DeviceListsWriterApi,
  type DeviceListUpdates,
  type KeysUpload,
} from './device-lists.js';
import { checkDeviceKeys, checkKeyMap, withSignatures } from './key-json.js';
import { LruCache } from '../../util/lru.js';

export interface KeysQueryResult {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  user_signing_keys: Record<string, JsonObject>;
  failures: Record<string, JsonObject>;
}

export interface KeysClaimResult {
  one_time_keys: Record<string, Record<string, Record<string, JsonObject>>>;
  failures: Record<string, JsonObject>;
}

export interface KeysHandlerDeps {
  serverName: string;
  transactions: TransactionRunner;
  keys: DeviceKeysStore;
  crossSigning: CrossSigningStore;
  writer: DeviceListsWriterApi;
  changes: DeviceListChanges;
  notifier: Notifier;
}

export class KeysHandler {
  private readonly served = new ServedKeyJson(10_000);

  constructor(private readonly deps: KeysHandlerDeps) {}

  /** `POST /keys/upload` for the requester's device. */
  async upload(requester: Requester, body: JsonObject): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { userId, deviceId } = requester;
    if (body.device_keys === null) throw Errors.badJson('device_keys must not be null');
    const upload: KeysUpload = {
      one_time_keys: checkKeyMap(body.one_time_keys, 'one_time_keys'),
      fallback_keys: checkKeyMap(body.fallback_keys, 'fallback_keys'),
    };
    if (body.device_keys !== undefined) upload.device_keys = checkDeviceKeys(body.device_keys, userId, deviceId);
    const algorithms = upload.fallback_keys.map((k) => k.algorithm);
    if (new Set(algorithms).size !== algorithms.length) throw Errors.badJson('fallback_keys may hold one key per algorithm');
    return { one_time_key_counts: await this.deps.writer.uploadKeys(userId, deviceId, upload) };
  }

  /**
   * `POST /keys/query`, answered as JSON text (a `KeysQueryResult`). A client asks for every user it
   * shares an encrypted room with, often a thousand or more: the answer is put together from the
   * stored key JSON as text rather than parsed and re-serialised (see `ServedKeyJson`). The route
   * has checked `timeout`.
   */
  async query(requester: Requester, body: JsonObject): Promise<string> {
    const requested = body.device_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'device_keys' must be a JSON object");
    const allDevicesOf: string[] = [];
    const someDevices: Array<[string, string]> = [];
    const users: string[] = [];
    for (const [userId, deviceIds] of Object.entries(requested)) {
      if (!Array.isArray(deviceIds) || !deviceIds.every((d) => typeof d === 'string'))
        throw Errors.badJson("'device_keys' values must be lists of strings");
      if (!isValidUserId(userId) || !isLocalUser(userId, this.deps.serverName)) continue;
      users.push(userId);
      if (deviceIds.length === 0) allDevicesOf.push(userId);
      else for (const deviceId of new Set(deviceIds)) someDevices.push([userId, deviceId]);
    }
    const { keys, crossSigning } = this.deps;
    const [deviceRows, selfSignatures, crossSigningKeys, requesterSignatures] = await Promise.all([
      keys.deviceKeysOf(allDevicesOf, someDevices),
      crossSigning.selfSignaturesOf(users),
      crossSigning.keysSeenBy(requester.userId, users),
      crossSigning.signaturesBy(requester.userId, users),
    ]);

    // Rows are unique per (user, device) and per (user, key type), so no member appears twice.
    const devicesOf = new Map<string, string[]>(users.map((userId) => [userId, []]));
    const signaturesOf = indexSignatures(selfSignatures);
    for (const row of deviceRows) {
      const unsigned: JsonObject = row.display_name === null ? {} : { device_display_name: row.display_name };
      const text = this.served.text(
        `d\u0000${row.user_id}\u0000${row.device_id}`,
        row.key_json,
        signaturesOf(row.user_id, row.device_id),
        unsigned,
      );
      devicesOf.get(row.user_id)!.push(`${JSON.stringify(row.device_id)}:${text}`);
    }
    // Only the requester's own user-signing key is shown, and signatures on cross-signing keys only
    // to their author (a user-signing key's signature of another user's master key tells who
    // verified whom).
    const requesterSignaturesOf = indexSignatures(requesterSignatures);
    const sections: Record<CrossSigningKeyType, string[]> = { master: [], self_signing: [], user_signing: [] };
    for (const row of crossSigningKeys) {
      const text = this.served.text(
        `c\u0000${row.user_id}\u0000${row.key_type}`,
        row.key_json,
        requesterSignaturesOf(row.user_id, row.public_key),
      );
      sections[row.key_type].push(`${JSON.stringify(row.user_id)}:${text}`);
    }
    const deviceKeys = [...devicesOf].map(([userId, devices]) => `${JSON.stringify(userId)}:{${devices.join(',')}}`);
    return (
      `{"device_keys":{${deviceKeys.join(',')}},"master_keys":{${sections.master.join(',')}},` +
      `"self_signing_keys":{${sections.self_signing.join(',')}},"user_signing_keys":{${sections.user_signing.join(',')}},"failures":{}}`
    );
  }

  /**
   * `POST /keys/claim`: per requested device, its oldest one-time key of the algorithm, removed as
   * it is handed out, or else its fallback key (kept, and marked used). All claims of a request
   * run in one transaction. `timeout` (checked by the route) only matters for other servers' users.
   */
  async claim(body: JsonObject): Promise<KeysClaimResult> {
    const requested = body.one_time_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'one_time_keys' must be a JSON object");
    const wanted: Array<{ userId: string; deviceId: string; algorithm: string }> = [];
    for (const [userId, devices] of Object.entries(requested)) {
      if (!isJsonObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) {
        throw Errors.badJson("'one_time_keys' must map user ids to device ids to algorithms");
      }
      if (!isValidUserId(userId) || !isLocalUser(userId, this.deps.serverName)) continue;
      for (const [deviceId, algorithm] of Object.entries(devices as Record<string, string>)) wanted.push({ userId, deviceId, algorithm });
    }
    const result: KeysClaimResult = { one_time_keys: {}, failures: {} };
    if (wanted.length === 0) return result;
    const { keys } = this.deps;
    const claimed = await this.deps.transactions.transaction(async (tx) => {
      const found: Array<{ userId: string; deviceId: string; name: string; key: JsonObject }> = [];
      for (const { userId, deviceId, algorithm } of wanted) {
        const key =
          (await keys.claimOneTimeKey(tx, userId, deviceId, algorithm)) ?? (await keys.claimFallbackKey(tx, userId, deviceId, algorithm));
        if (key) found.push({ userId, deviceId, name: `${algorithm}:${key.keyId}`, key: JSON.parse(key.keyJson) as JsonObject });
      }
      return found;
    });
    for (const { userId, deviceId, name, key } of claimed) ((result.one_time_keys[userId] ??= {})[deviceId] ??= {})[name] = key;
    return result;
  }

  /** `GET /keys/changes?from&to`: sync tokens; `to` defaults to now (as Synapse, which ignores it). */
  async changes(requester: Requester, fromToken: string, toToken: string | undefined): Promise<DeviceListUpdates> {
    const now = this.deps.notifier.currentPositions();
    const to = toToken === undefined ? now : clampPositions(decodeSyncToken(toToken), now);
    const from = clampPositions(decodeSyncToken(fromToken), to);
    return this.deps.changes.between(requester.userId, from, to);
  }

  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    return oneTimeKeyCounts(await this.deps.keys.countOneTimeKeys(userId, deviceId));
  }

  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return this.deps.keys.unusedFallbackKeyTypes(userId, deviceId);
  }
}

type Signature = { signer: string; keyId: string; signature: string };

/**
 * Key JSON as `/keys/query` serves it: the stored JSON with the signatures kept beside it merged
 * into `signatures`, and `unsigned` set. Without either it is the stored text itself. With them it
 * is memoised per key (`id`), an entry being used only while the stored JSON and the extras are
 * exactly those it was made from (the answer is a function of them, so it never goes stale and
 * needs no invalidation); the least recently used go first. Key JSON holds property names found
 * nowhere else (key ids, user ids), which makes parsing it slow (V8 builds an object shape per
 * name), and the same keys are served to every member of the rooms their owner is in.
 */
class ServedKeyJson {
  private readonly entries: LruCache<string, { keyJson: string; extras: string; text: string }>;

  constructor(capacity: number) {
    this.entries = new LruCache(capacity);
  }

  text(id: string, keyJson: string, signatures: readonly Signature[], unsigned?: JsonObject): string {
    if (signatures.length === 0 && unsigned === undefined) return keyJson;
    const extras = JSON.stringify([signatures, unsigned ?? null]);
    const entry = this.entries.get(id);
    if (entry && entry.keyJson === keyJson && entry.extras === extras) return entry.text;
    const json = withSignatures(JSON.parse(keyJson) as JsonObject, signatures);
    const text = JSON.stringify(unsigned === undefined ? json : { ...json, unsigned });
    this.entries.set(id, { keyJson, extras, text });
    return text;
  }
}

/** Signatures by (target user, target device or key) → `{signer, keyId, signature}` list. */
function indexSignatures(rows: readonly SignatureRow[]): (userId: string, targetId: string) => Signature[] {
  const index = new Map<string, Signature[]>();
  for (const row of rows) {
    const key = `${row.target_user_id}\u0000${row.target_device_id}`;
    let list = index.get(key);
    if (!list) index.set(key, (list = []));
    list.push({ signer: row.user_id, keyId: row.key_id, signature: row.signature });
  }
  return (userId, targetId) => index.get(`${userId}\u0000${targetId}`) ?? [];
}
