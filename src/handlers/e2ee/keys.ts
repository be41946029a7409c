// Device keys for other users: `/keys/upload` (checked here, stored by the device_lists writer),
// `/keys/query`, `/keys/claim` and `/keys/changes` (S:data/api/client-server/keys.yaml;
// `Syn:synapse/handlers/e2e_keys.py`), for our users and other servers' (spec: server-server API
// §End-to-End Encryption); and the federation side: `/user/devices`, `/user/keys/query|claim`
// answered for our users.

import { isValidUserId, serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import type { FederationRequestOptions } from '../../federation/client.js';
import { FederationRequestError, FederationHttpError } from '../../federation/errors.js';
import type { RemoteDeviceListsStore } from '../../storage/remote-device-lists-store.js';
import type { UsersStore } from '../../storage/users-store.js';
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
import { verifiedKeysQueryAnswer, type RemoteUserTracking } from './remote-keys.js';
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
  users: UsersStore;
  remoteDevices: RemoteDeviceListsStore;
  tracking: RemoteUserTracking;
  /** Signed requests to other servers; absent: other servers' users are in `failures`. */
  federation?: { request(destination: string, options: FederationRequestOptions): Promise<JsonValue> };
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
   * has checked `timeout` (ms, default 10 s): how long other servers' users' keys are waited for.
   */
  async query(requester: Requester, body: JsonObject): Promise<string> {
    const requested = body.device_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'device_keys' must be a JSON object");
    const local = new Map<string, string[]>();
    const remote = new Map<string, Map<string, string[]>>();
    for (const [userId, deviceIds] of Object.entries(requested)) {
      if (!Array.isArray(deviceIds) || !deviceIds.every((d) => typeof d === 'string'))
        throw Errors.badJson("'device_keys' values must be lists of strings");
      if (!isValidUserId(userId)) continue;
      const devices = [...new Set(deviceIds)];
      if (isLocalUser(userId, this.deps.serverName)) local.set(userId, devices);
      else {
        const server = serverNameOf(userId)!;
        let users = remote.get(server);
        if (!users) remote.set(server, (users = new Map<string, string[]>()));
        users.set(userId, devices);
      }
    }
    const fetched = await this.queryRemote(remote, timeoutOf(body));
    const answer = await this.storedKeys(requester.userId, local, fetched.cached);
    for (const [userId, devices] of Object.entries(fetched.keys.device_keys))
      answer.deviceKeys.push(`${JSON.stringify(userId)}:${JSON.stringify(devices)}`);
    for (const [userId, key] of Object.entries(fetched.keys.master_keys))
      answer.sections.master.push(`${JSON.stringify(userId)}:${JSON.stringify(key)}`);
    for (const [userId, key] of Object.entries(fetched.keys.self_signing_keys))
      answer.sections.self_signing.push(`${JSON.stringify(userId)}:${JSON.stringify(key)}`);
    const { deviceKeys, sections } = answer;
    return (
      `{"device_keys":{${deviceKeys.join(',')}},"master_keys":{${sections.master.join(',')}},` +
      `"self_signing_keys":{${sections.self_signing.join(',')}},"user_signing_keys":{${sections.user_signing.join(',')}},` +
      `"failures":${JSON.stringify(fetched.failures)}}`
    );
  }

  /**
   * `POST /_matrix/federation/v1/user/keys/query` (spec: server-server API §End-to-End Encryption):
   * our users' device keys and master and self-signing keys, as JSON text. Other users are left out.
   */
  async queryForServer(body: JsonObject): Promise<string> {
    const requested = body.device_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'device_keys' must be a JSON object");
    const local = new Map<string, string[]>();
    for (const [userId, deviceIds] of Object.entries(requested)) {
      if (!Array.isArray(deviceIds) || !deviceIds.every((d) => typeof d === 'string'))
        throw Errors.badJson("'device_keys' values must be lists of strings");
      if (isValidUserId(userId) && isLocalUser(userId, this.deps.serverName)) local.set(userId, [...new Set(deviceIds)]);
    }
    // No viewer: no user-signing key, and no signatures only their author may see.
    const { deviceKeys, sections } = await this.storedKeys('', local, []);
    return (
      `{"device_keys":{${deviceKeys.join(',')}},"master_keys":{${sections.master.join(',')}},` +
      `"self_signing_keys":{${sections.self_signing.join(',')}}}`
    );
  }

  /**
   * `GET /_matrix/federation/v1/user/devices/{userId}` for one of our users: every device (with its
   * keys, when it has any), the user's latest device-list position (the `stream_id` that later
   * `m.device_list_update`s follow), and their master and self-signing keys.
   */
  async devicesForServer(userId: string): Promise<JsonObject> {
    if (!isValidUserId(userId) || !isLocalUser(userId, this.deps.serverName))
      throw Errors.invalidParam('User is not hosted on this homeserver'); // as Synapse (400)
    const { keys, crossSigning, users } = this.deps;
    const [devices, keyRows, selfSignatures, crossSigningKeys, streamId] = await Promise.all([
      users.listDevices(userId),
      keys.deviceKeysOf([userId], []),
      crossSigning.selfSignaturesOf([userId]),
      crossSigning.keysSeenBy('', [userId]),
      keys.latestDeviceChange(userId),
    ]);
    const signaturesOf = indexSignatures(selfSignatures);
    const keysOf = new Map(keyRows.map((row) => [row.device_id, row.key_json]));
    const answer: JsonObject = {
      user_id: userId,
      stream_id: streamId,
      devices: devices.map((device) => {
        const keyJson = keysOf.get(device.device_id);
        return {
          device_id: device.device_id,
          ...(keyJson === undefined
            ? {}
            : { keys: withSignatures(JSON.parse(keyJson) as JsonObject, signaturesOf(userId, device.device_id)) }),
          ...(device.display_name === null ? {} : { device_display_name: device.display_name }),
        };
      }),
    };
    for (const row of crossSigningKeys) answer[`${row.key_type}_key`] = JSON.parse(row.key_json) as JsonObject;
    return answer;
  }

  /**
   * Our users' keys and the cached keys of remote users (`cached`: device keys from the remote
   * cache, cross-signing keys from the shared table), as the JSON text of each entry.
   */
  private async storedKeys(
    viewer: string,
    local: ReadonlyMap<string, readonly string[]>,
    cached: ReadonlyArray<readonly [string, readonly string[]]>,
  ): Promise<{ deviceKeys: string[]; sections: Record<CrossSigningKeyType, string[]> }> {
    const allDevicesOf: string[] = [];
    const someDevices: Array<[string, string]> = [];
    for (const [userId, deviceIds] of local) {
      if (deviceIds.length === 0) allDevicesOf.push(userId);
      else for (const deviceId of deviceIds) someDevices.push([userId, deviceId]);
    }
    const users = [...local.keys()];
    const cachedUsers = cached.map(([userId]) => userId);
    const crossSigningUsers = [...users, ...cachedUsers];
    const { keys, crossSigning, remoteDevices } = this.deps;
    const [deviceRows, selfSignatures, crossSigningKeys, requesterSignatures, remoteRows] = await Promise.all([
      keys.deviceKeysOf(allDevicesOf, someDevices),
      crossSigning.selfSignaturesOf(users),
      crossSigning.keysSeenBy(viewer, crossSigningUsers),
      viewer === '' ? Promise.resolve([]) : crossSigning.signaturesBy(viewer, crossSigningUsers),
      cachedUsers.length > 0 ? remoteDevices.devicesOf(cachedUsers) : Promise.resolve([]),
    ]);

    // Rows are unique per (user, device) and per (user, key type), so no member appears twice.
    const devicesOf = new Map<string, string[]>(crossSigningUsers.map((userId) => [userId, []]));
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
    const wanted = new Map(cached.map(([userId, deviceIds]) => [userId, new Set(deviceIds)]));
    for (const row of remoteRows) {
      const only = wanted.get(row.user_id);
      if (row.key_json === null || (only !== undefined && only.size > 0 && !only.has(row.device_id))) continue;
      const unsigned: JsonObject = row.display_name === null ? {} : { device_display_name: row.display_name };
      const text = this.served.text(`r\u0000${row.user_id}\u0000${row.device_id}`, row.key_json, [], unsigned);
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
    return { deviceKeys, sections };
  }

  /**
   * Other servers' users' keys, every server asked at once and waited for at most `timeoutMs`.
   * Users we track (they share a room with one of our users) are served from the cache, filled
   * first through the device_lists writer (`/user/devices`) when it is stale; the others are asked
   * of their server with `/user/keys/query`. A server that does not answer is in `failures`.
   */
  private async queryRemote(
    remote: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>,
    timeoutMs: number,
  ): Promise<{
    cached: Array<[string, string[]]>;
    keys: ReturnType<typeof verifiedKeysQueryAnswer>;
    failures: Record<string, JsonObject>;
  }> {
    const result = {
      cached: [] as Array<[string, string[]]>,
      keys: { device_keys: {}, master_keys: {}, self_signing_keys: {} },
      failures: {} as Record<string, JsonObject>,
    };
    if (remote.size === 0) return result;
    const { tracking, remoteDevices, writer } = this.deps;
    const lists = await remoteDevices.listsOf([...remote.values()].flatMap((users) => [...users.keys()]));
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      [...remote].map(async ([server, users]) => {
        try {
          const untracked = new Map<string, readonly string[]>();
          for (const [userId, deviceIds] of users) {
            if (!(await tracking.sharesRoomWithLocalUsers(userId))) {
              untracked.set(userId, deviceIds);
              continue;
            }
            const list = lists.get(userId);
            const fresh = list !== undefined && list.stream_id !== null && (await tracking.cacheFollows(userId, list.events_position));
            if (!fresh && !(await withDeadline(writer.resyncRemoteUser(userId, remaining(deadline)), deadline))) {
              throw new Error(`${server} did not send the device list of ${userId}`);
            }
            result.cached.push([userId, [...deviceIds]]);
          }
          if (untracked.size === 0) return;
          const client = this.deps.federation;
          if (!client) throw new Error('federation is not available');
          const body = { device_keys: Object.fromEntries([...untracked].map(([userId, deviceIds]) => [userId, [...deviceIds]])) };
          const answer = await withDeadline(
            client.request(server, {
              method: 'POST',
              path: '/_matrix/federation/v1/user/keys/query',
              body,
              timeoutMs: remaining(deadline),
            }),
            deadline,
          );
          const verified = verifiedKeysQueryAnswer(answer, server, untracked);
          Object.assign(result.keys.device_keys, verified.device_keys);
          Object.assign(result.keys.master_keys, verified.master_keys);
          Object.assign(result.keys.self_signing_keys, verified.self_signing_keys);
        } catch (err) {
          result.failures[server] = failureOf(err);
        }
      }),
    );
    return result;
  }

  /**
   * `POST /keys/claim`: per requested device, its oldest one-time key of the algorithm, removed as
   * it is handed out, or else its fallback key (kept, and marked used). All claims of a request
   * run in one transaction. Other servers' users' keys are claimed from their servers
   * (`/user/keys/claim`), all at once, waited for at most `timeout` ms (default 10 s); a server
   * that does not answer is in `failures`.
   */
  async claim(body: JsonObject): Promise<KeysClaimResult> {
    const requested = body.one_time_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'one_time_keys' must be a JSON object");
    const remote = new Map<string, Record<string, Record<string, string>>>();
    for (const [userId, devices] of Object.entries(requested)) {
      if (!isJsonObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) {
        throw Errors.badJson("'one_time_keys' must map user ids to device ids to algorithms");
      }
      if (!isValidUserId(userId) || isLocalUser(userId, this.deps.serverName)) continue;
      const server = serverNameOf(userId)!;
      let users = remote.get(server);
      if (!users) remote.set(server, (users = {}));
      users[userId] = devices as Record<string, string>;
    }
    const result = await this.claimLocal(requested);
    if (remote.size === 0) return result;
    const deadline = Date.now() + timeoutOf(body);
    await Promise.all(
      [...remote].map(async ([server, users]) => {
        try {
          const client = this.deps.federation;
          if (!client) throw new Error('federation is not available');
          const answer = await withDeadline(
            client.request(server, {
              method: 'POST',
              path: '/_matrix/federation/v1/user/keys/claim',
              body: { one_time_keys: users },
              timeoutMs: remaining(deadline),
            }),
            deadline,
          );
          const claimed = isJsonObject(answer) && isJsonObject(answer.one_time_keys) ? answer.one_time_keys : {};
          // Only keys of the devices asked for, one key object per device.
          for (const [userId, devices] of Object.entries(users)) {
            const byDevice = claimed[userId];
            if (!isJsonObject(byDevice)) continue;
            for (const deviceId of Object.keys(devices)) {
              const keys = byDevice[deviceId];
              if (isJsonObject(keys) && Object.values(keys).every((k) => isJsonObject(k) || typeof k === 'string'))
                (result.one_time_keys[userId] ??= {})[deviceId] = keys as Record<string, JsonObject>;
            }
          }
        } catch (err) {
          result.failures[server] = failureOf(err);
        }
      }),
    );
    return result;
  }

  /**
   * `POST /_matrix/federation/v1/user/keys/claim`: our users' keys, claimed as for our own clients
   * (other users are left out).
   */
  claimForServer(body: JsonObject): Promise<KeysClaimResult> {
    const requested = body.one_time_keys;
    if (!isJsonObject(requested)) throw Errors.badJson("'one_time_keys' must be a JSON object");
    for (const devices of Object.values(requested)) {
      if (!isJsonObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) {
        throw Errors.badJson("'one_time_keys' must map user ids to device ids to algorithms");
      }
    }
    return this.claimLocal(requested);
  }

  private async claimLocal(requested: JsonObject): Promise<KeysClaimResult> {
    const wanted: Array<{ userId: string; deviceId: string; algorithm: string }> = [];
    for (const [userId, devices] of Object.entries(requested)) {
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

/** `timeout` of `/keys/query` and `/keys/claim` (ms): how long other servers are waited for. */
const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;

function timeoutOf(body: JsonObject): number {
  const timeout = body.timeout;
  return typeof timeout === 'number' && Number.isFinite(timeout) && timeout >= 0 ? Math.min(timeout, 60_000) : DEFAULT_REMOTE_TIMEOUT_MS;
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

class DeadlineError extends Error {}

/** The promise, or a `DeadlineError` once the deadline passes (the work goes on, unwaited). */
function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DeadlineError('timed out')), remaining(deadline));
  });
  promise.catch(() => undefined);
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** A server's entry in `failures` (as Synapse: the status the server or its absence amounts to, and why). */
function failureOf(err: unknown): JsonObject {
  if (err instanceof FederationHttpError) return { status: err.status, message: err.message };
  if (err instanceof FederationRequestError || err instanceof DeadlineError)
    return { status: 503, message: err instanceof DeadlineError ? 'the server did not answer in time' : err.message };
  return { status: 503, message: err instanceof Error ? err.message : String(err) };
}
