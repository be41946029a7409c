// The device_lists stream: whose devices or cross-signing keys changed, so that everyone sharing
// a room with them fetches their keys again (end_to_end_encryption.md §Tracking the device list).
//
// `DeviceListsWriter` is the stream's writer and the only code that writes published keys: device
// keys, one-time and fallback keys, cross-signing keys and signatures (Synapse serves the endpoints
// that upload them on the device_lists writer). It allocates positions, writes its rows in one
// transaction with the keys, and publishes `{stream: 'device_lists', userId, roomIds}` on the bus
// with the user's joined rooms, so the notifier wakes everyone who shares a room with them. Its
// interface takes plain JSON, so worker mode can put an RPC in between.
//
// `DeviceListChanges` only reads: the `device_lists` section of /sync and `/keys/changes`.

import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import type { CrossSigningStore } from '../../storage/cross-signing-store.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { DeviceKeysStore } from '../../storage/device-keys-store.js';
import type { UsersStore } from '../../storage/users-store.js';
import type { PositionsFor } from '../../streams/id-generator.js';
import type { Notifier } from '../../streams/notifier.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { StreamPositions } from '../../streams/streams.js';
import type { UserMemberships } from '../kernel/memberships.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import { checkSignedUploads, checkSigningKeysUpload, type SigningKeysUpload } from './cross-signing.js';
import { canonicalKeyJson, sameOneTimeKey, type UploadedKey } from './key-json.js';
import {
  parseUserDevicesAnswer,
  verifiedCrossSigningKey,
  verifiedDeviceKeys,
  type RemoteUserDevices,
  type RemoteUserTracking,
} from './remote-keys.js';
import type { RemoteDeviceListsStore } from '../../storage/remote-device-lists-store.js';
import { messageOf } from '../../storage/faults.js';
import type { Logger } from '../../util/log.js';

/** `/keys/upload` after its structural and signature checks. */
export interface KeysUpload {
  device_keys?: JsonObject;
  one_time_keys: UploadedKey[];
  fallback_keys: UploadedKey[];
}

/** Per key owner and key id: why a signature was refused (`/keys/signatures/upload` `failures`). */
export type SignatureFailures = Record<string, Record<string, { errcode: string; error: string }>>;

/** The device_lists writer, as the API reaches it (in worker mode over RPC). */
export interface DeviceListsWriterApi {
  /** Stores a device's keys; returns its unclaimed one-time keys per algorithm. */
  uploadKeys(userId: string, deviceId: string, upload: KeysUpload): Promise<Record<string, number>>;
  /** Stores the keys of `/keys/device_signing/upload` (authentication already done). */
  uploadSigningKeys(userId: string, upload: SigningKeysUpload): Promise<void>;
  /** Checks and stores the signatures of `/keys/signatures/upload`; returns those refused. */
  uploadSignatures(userId: string, signatures: JsonObject): Promise<SignatureFailures>;
  /** Tells everyone the devices are gone (once their deletion has committed). */
  devicesDeleted(userId: string, deviceIds: string[]): Promise<void>;
  /** An `m.device_list_update` from the user's server (parsed; the sender belongs to it). */
  remoteDeviceListUpdate(update: RemoteDeviceUpdate): Promise<void>;
  /** An `m.signing_key_update` from the user's server (parsed; keys not yet verified). */
  remoteSigningKeyUpdate(userId: string, masterKey: JsonObject | null, selfSigningKey: JsonObject | null): Promise<void>;
  /**
   * Makes the cache of a remote user we track fresh (`/user/devices` from their server, unless it
   * is fresh already); false when their server did not answer in time.
   */
  resyncRemoteUser(userId: string, timeoutMs: number): Promise<boolean>;
}

/** An `m.device_list_update` as the writer takes it (plain JSON: it may cross an RPC). */
export interface RemoteDeviceUpdate {
  userId: string;
  deviceId: string;
  deviceDisplayName: string | null;
  streamId: number;
  prevIds: number[];
  deleted: boolean;
  keys: JsonObject | null;
}

export interface DeviceListsWriterDeps {
  transactions: TransactionRunner;
  keys: DeviceKeysStore;
  crossSigning: CrossSigningStore;
  /** Which devices exist (cross-signing keys share their id namespace). */
  users: UsersStore;
  memberships: UserMemberships;
  bus: ReplicationBus;
  instanceName: string;
  now: () => number;
  positions: PositionsFor;
  /** Other servers' users' cached devices. */
  remoteDevices: RemoteDeviceListsStore;
  tracking: RemoteUserTracking;
  /** Our events stream position now (when a remote cache is filled). */
  eventsPosition: () => number;
  /** `GET /_matrix/federation/v1/user/devices/{userId}` at the user's server; absent without federation. */
  fetchUserDevices?: (userId: string, timeoutMs: number) => Promise<JsonValue>;
  log?: Logger;
}

/** How long a resync started by an EDU waits for the user's server. */
const EDU_RESYNC_TIMEOUT_MS = 30_000;

/** The one-time key algorithm clients always get a count for, even when none are left (as Synapse). */
const SIGNED_CURVE25519 = 'signed_curve25519';

export function oneTimeKeyCounts(counts: ReadonlyMap<string, number>): Record<string, number> {
  return { [SIGNED_CURVE25519]: 0, ...Object.fromEntries(counts) };
}

export class DeviceListsWriter implements DeviceListsWriterApi {
  /** One write per user at a time: each compares what is stored before writing. */
  private readonly queue = new KeyedQueue();

  private constructor(
    private readonly deps: DeviceListsWriterDeps,
    private readonly publisher: StreamPublisher,
  ) {}

  static async create(deps: DeviceListsWriterDeps): Promise<DeviceListsWriter> {
    const ids = await deps.positions('device_lists', await deps.keys.maxStreamId());
    return new DeviceListsWriter(deps, new StreamPublisher('device_lists', ids, deps.bus, deps.instanceName));
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  uploadKeys(userId: string, deviceId: string, upload: KeysUpload): Promise<Record<string, number>> {
    const { transactions, keys, now } = this.deps;
    return this.queue.run(userId, async () => {
      const deviceKeys = upload.device_keys === undefined ? undefined : canonicalKeyJson(upload.device_keys, 'device_keys');
      // Unchanged device keys (clients re-upload them) are no news to anyone.
      const changed = deviceKeys !== undefined && (await keys.deviceKeysJson(userId, deviceId)) !== deviceKeys;
      const rows = changed ? await this.rowsFor(userId) : [];
      return this.publisher.write(changed ? 1 : 0, async (positions) => {
        const counts = await transactions.transaction(async (tx) => {
          if (changed) {
            await keys.setDeviceKeys(tx, userId, deviceId, deviceKeys, now());
            await keys.recordDeviceChanges(tx, positions[0]!, userId, [deviceId]);
          }
          const stored = await keys.oneTimeKeysJson(
            tx,
            userId,
            deviceId,
            upload.one_time_keys.map((k) => [k.algorithm, k.keyId] as const),
          );
          const fresh: Array<{ algorithm: string; keyId: string; keyJson: string }> = [];
          for (const key of upload.one_time_keys) {
            const name = `${key.algorithm}:${key.keyId}`;
            const existing = stored.get(name);
            if (existing === undefined)
              fresh.push({ algorithm: key.algorithm, keyId: key.keyId, keyJson: canonicalKeyJson(key.key, `one_time_keys.${name}`) });
            else if (!sameOneTimeKey(existing, key.key))
              throw Errors.invalidParam(`One-time key ${name} already exists with different content`);
          }
          await keys.addOneTimeKeys(tx, userId, deviceId, fresh, now());
          for (const key of upload.fallback_keys) {
            const keyJson = canonicalKeyJson(key.key, `fallback_keys.${key.algorithm}:${key.keyId}`);
            // The same key again keeps its used flag: re-marking it unused would hand it out as new.
            if ((await keys.fallbackKeyJson(tx, userId, deviceId, key.algorithm)) === keyJson) continue;
            await keys.setFallbackKey(tx, userId, deviceId, key.algorithm, key.keyId, keyJson);
          }
          return keys.countOneTimeKeys(userId, deviceId, tx);
        });
        return { value: oneTimeKeyCounts(counts), rows };
      });
    });
  }

  uploadSigningKeys(userId: string, upload: SigningKeysUpload): Promise<void> {
    const { transactions, keys, crossSigning, users } = this.deps;
    return this.queue.run(userId, async () => {
      const stored = new Map((await crossSigning.keysOf([userId])).map((row) => [row.key_type, row]));
      const accepted = checkSigningKeysUpload(userId, upload, stored);
      const changes = accepted.filter((key) => stored.get(key.type)?.key_json !== canonicalKeyJson(key.key.json, `${key.type} key`));
      if (changes.length === 0) return;
      // Cross-signing keys share the device id namespace (signatures name them by public key).
      const clashes = await users.existingDevices(
        userId,
        changes.map((c) => c.key.publicKey),
      );
      if (clashes.size > 0) throw Errors.forbidden('Key ID in use');
      // Master and self-signing keys are news to everyone sharing a room; a new user-signing key
      // only to the user's own devices.
      const public_ = changes.filter((c) => c.type !== 'user_signing').map((c) => c.key.publicKey);
      const ownOnly = changes.some((c) => c.type === 'user_signing');
      const rows = public_.length > 0 ? await this.rowsFor(userId) : [{ stream: 'device_lists' as const, userId, roomIds: [] }];
      await this.publisher.write(1, async ([position]) => {
        await transactions.transaction(async (tx) => {
          for (const change of changes) {
            await crossSigning.setKey(
              tx,
              userId,
              change.type,
              change.key.publicKey,
              canonicalKeyJson(change.key.json, `${change.type} key`),
            );
          }
          if (public_.length > 0) await keys.recordDeviceChanges(tx, position!, userId, public_);
          if (ownOnly) await keys.recordSignatureChanges(tx, position!, userId, [userId]);
        });
        return { value: undefined, rows };
      });
    });
  }

  uploadSignatures(userId: string, signatures: JsonObject): Promise<SignatureFailures> {
    const { transactions, keys, crossSigning } = this.deps;
    return this.queue.run(userId, async () => {
      // The signer's own keys are needed too: their user-signing key signs other users' keys.
      const owners = [...new Set([userId, ...Object.keys(signatures)])];
      const [crossSigningKeys, ownDevices] = await Promise.all([crossSigning.keysOf(owners), keys.deviceKeysOf([userId], [])]);
      const checked = checkSignedUploads(userId, signatures, crossSigningKeys, ownDevices);
      if (checked.accepted.length === 0) return checked.failures;
      const ownTargets = checked.accepted.filter((s) => s.target_user_id === userId).map((s) => s.target_device_id);
      const otherUsers = checked.accepted.filter((s) => s.target_user_id !== userId).map((s) => s.target_user_id);
      const rows: StreamRow[] = ownTargets.length > 0 ? await this.rowsFor(userId) : [{ stream: 'device_lists', userId, roomIds: [] }];
      await this.publisher.write(1, async ([position]) => {
        await transactions.transaction(async (tx) => {
          await crossSigning.addSignatures(tx, checked.accepted);
          if (ownTargets.length > 0) await keys.recordDeviceChanges(tx, position!, userId, ownTargets);
          if (otherUsers.length > 0) await keys.recordSignatureChanges(tx, position!, userId, otherUsers);
        });
        return { value: undefined, rows };
      });
      return checked.failures;
    });
  }

  devicesDeleted(userId: string, deviceIds: string[]): Promise<void> {
    const { transactions, keys, users } = this.deps;
    return this.queue.run(userId, async () => {
      const rows = await this.rowsFor(userId);
      await this.publisher.write(1, async ([position]) => {
        const gone = await transactions.transaction(async (tx) => {
          // A deletion that failed (rolled back) left its devices in place: nothing to announce.
          const existing = await users.existingDevices(userId, deviceIds, tx);
          const deleted = deviceIds.filter((id) => !existing.has(id));
          await keys.recordDeviceChanges(tx, position!, userId, deleted);
          return deleted;
        });
        return { value: undefined, rows: gone.length > 0 ? rows : [] };
      });
    });
  }

  remoteDeviceListUpdate(update: RemoteDeviceUpdate): Promise<void> {
    const { userId } = update;
    return this.queue.run(userId, async () => {
      // Only users we share a room with are tracked; their server should not send others.
      if (!(await this.deps.tracking.sharesRoomWithLocalUsers(userId))) return;
      const list = await this.deps.remoteDevices.listOf(userId);
      if (list === undefined) {
        // Not cached yet (cached on the first query): our users' clients only need to hear of it.
        await this.announce(userId, [update.deviceId]);
        return;
      }
      const known = list.stream_id;
      if (known !== null && update.streamId <= known) return; // seen already (a repeated EDU)
      // spec: server-server API §Device Management: an update whose prev_id are all known applies
      // on top of the cache; otherwise updates were missed and the whole list is fetched again.
      // Stream ids grow, and the cache reflects everything up to `known`.
      if (known === null || update.prevIds.length === 0 || !update.prevIds.every((id) => id <= known)) {
        await this.resync(userId, EDU_RESYNC_TIMEOUT_MS, [update.deviceId]);
        return;
      }
      const keys = update.keys === null ? undefined : verifiedDeviceKeys(update.keys, userId, update.deviceId);
      if (update.keys !== null && keys === undefined)
        this.deps.log?.warn({ userId, deviceId: update.deviceId }, 'device keys do not verify');
      const device = update.deleted
        ? undefined
        : { deviceId: update.deviceId, keyJson: keys ? canonicalKeyJson(keys, 'keys') : null, displayName: update.deviceDisplayName };
      const rows = await this.rowsFor(userId);
      await this.publisher.write(1, async ([position]) => {
        await this.deps.transactions.transaction(async (tx) => {
          const { remoteDevices, now, eventsPosition } = this.deps;
          await remoteDevices.updateDevice(tx, userId, update.streamId, update.deviceId, device, eventsPosition(), now());
          await this.deps.keys.recordDeviceChanges(tx, position!, userId, [update.deviceId]);
        });
        return { value: undefined, rows };
      });
    });
  }

  remoteSigningKeyUpdate(userId: string, masterKey: JsonObject | null, selfSigningKey: JsonObject | null): Promise<void> {
    const { crossSigning, transactions, keys } = this.deps;
    return this.queue.run(userId, async () => {
      if (!(await this.deps.tracking.sharesRoomWithLocalUsers(userId))) return;
      const master = verifiedCrossSigningKey(masterKey, userId, 'master');
      // A self-signing key alone is checked against the master key we have.
      const currentMaster = master?.json ?? parseStored((await crossSigning.key(userId, 'master'))?.key_json);
      const selfSigning = verifiedCrossSigningKey(selfSigningKey, userId, 'self_signing', currentMaster);
      const changes = [
        ...(master ? [{ type: 'master' as const, ...master }] : []),
        ...(selfSigning ? [{ type: 'self_signing' as const, ...selfSigning }] : []),
      ];
      if (changes.length === 0) return;
      const rows = await this.rowsFor(userId);
      await this.publisher.write(1, async ([position]) => {
        await transactions.transaction(async (tx) => {
          for (const change of changes)
            await crossSigning.setKey(tx, userId, change.type, change.publicKey, canonicalKeyJson(change.json, `${change.type} key`));
          await keys.recordDeviceChanges(
            tx,
            position!,
            userId,
            changes.map((c) => c.publicKey),
          );
        });
        return { value: undefined, rows };
      });
    });
  }

  resyncRemoteUser(userId: string, timeoutMs: number): Promise<boolean> {
    return this.queue.run(userId, async () => {
      const list = await this.deps.remoteDevices.listOf(userId);
      if (list && list.stream_id !== null && (await this.deps.tracking.cacheFollows(userId, list.events_position))) return true;
      return this.resync(userId, timeoutMs, []);
    });
  }

  /**
   * Replaces a remote user's cached devices with their server's list (in the user's queue). When
   * the server does not answer, the cache is marked stale (fetched again on the next query) and
   * `announced` devices are still announced, so clients refetch.
   */
  private async resync(userId: string, timeoutMs: number, announced: string[]): Promise<boolean> {
    const { remoteDevices, crossSigning, keys, transactions, now, eventsPosition, fetchUserDevices, log } = this.deps;
    let answer: RemoteUserDevices | undefined;
    try {
      if (fetchUserDevices) answer = parseUserDevicesAnswer(await fetchUserDevices(userId, timeoutMs), userId);
      if (!answer) log?.warn({ userId }, 'the device list of a remote user could not be read from its server');
    } catch (err) {
      log?.info({ userId, err: messageOf(err) }, 'the device list of a remote user could not be fetched');
    }
    const before = new Set((await remoteDevices.devicesOf([userId])).map((d) => d.device_id));
    const changed = [...new Set([...announced, ...before, ...(answer?.devices.map((d) => d.deviceId) ?? [])])];
    const crossSigningKeys = answer
      ? [
          ...(answer.masterKey ? [{ type: 'master' as const, ...answer.masterKey }] : []),
          ...(answer.selfSigningKey ? [{ type: 'self_signing' as const, ...answer.selfSigningKey }] : []),
        ]
      : [];
    changed.push(...crossSigningKeys.map((k) => k.publicKey));
    const rows = changed.length > 0 ? await this.rowsFor(userId) : [];
    await this.publisher.write(1, async ([position]) => {
      await transactions.transaction(async (tx) => {
        if (!answer) {
          await remoteDevices.markStale(tx, userId, now());
        } else {
          const devices = answer.devices.map((d) => ({
            deviceId: d.deviceId,
            keyJson: d.keys ? canonicalKeyJson(d.keys, 'keys') : null,
            displayName: d.displayName ?? null,
          }));
          await remoteDevices.replaceDevices(tx, userId, answer.streamId, devices, eventsPosition(), now());
          for (const key of crossSigningKeys)
            await crossSigning.setKey(tx, userId, key.type, key.publicKey, canonicalKeyJson(key.json, `${key.type} key`));
        }
        await keys.recordDeviceChanges(tx, position!, userId, changed);
      });
      return { value: undefined, rows };
    });
    return answer !== undefined;
  }

  /** A device_lists row for a remote user's devices, so our users sharing a room refetch them. */
  private async announce(userId: string, deviceIds: string[]): Promise<void> {
    const rows = await this.rowsFor(userId);
    await this.publisher.write(1, async ([position]) => {
      await this.deps.transactions.transaction((tx) => this.deps.keys.recordDeviceChanges(tx, position!, userId, deviceIds));
      return { value: undefined, rows };
    });
  }

  /** The bus row announcing a change of the user's devices to everyone in their rooms. */
  private async rowsFor(userId: string): Promise<StreamRow[]> {
    const roomIds = (await this.deps.memberships.of(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
    return [{ stream: 'device_lists', userId, roomIds }];
  }
}

function parseStored(json: string | undefined): JsonObject | undefined {
  if (json === undefined) return undefined;
  const value = JSON.parse(json) as JsonValue;
  return isJsonObject(value) ? value : undefined;
}

export interface DeviceListUpdates {
  changed: string[];
  left: string[];
}

const SHARED_MEMBERSHIPS = new Set(['join', 'invite', 'knock']);

/**
 * What changed between two sets of stream positions for a user tracking device lists
 * (Synapse's rules, `Syn:synapse/handlers/device.py` `generate_sync_entry_for_device_list`):
 *
 * - `changed`: users sharing a joined room with the user (or the user themself) whose devices or
 *   cross-signing keys changed; everyone in a room the user newly joined; anyone who newly
 *   joined, was invited to or knocked on one of the user's rooms; users whose keys the user
 *   signed.
 * - `left`: users who no longer share any joined room with the user since they or the user left
 *   one.
 */
export class DeviceListChanges {
  constructor(
    private readonly deps: {
      keys: DeviceKeysStore;
      memberships: UserMemberships;
      roomState: RoomStateReader;
      notifier: Notifier;
    },
  ) {}

  async between(userId: string, from: StreamPositions, to: StreamPositions): Promise<DeviceListUpdates> {
    const changed = new Set<string>();
    const left = new Set<string>();
    let joined: Set<string> | undefined;
    const myRooms = async () =>
      (joined ??= new Set(
        (await this.deps.memberships.at(userId, to.events)).filter((m) => m.membership === 'join').map((m) => m.room_id),
      ));

    if (from.device_lists < to.device_lists && (await this.mayConcern(userId, from.device_lists, to.device_lists, myRooms))) {
      for (const other of await this.deps.keys.usersChangedBetween(from.device_lists, to.device_lists)) {
        if (other === userId || (await this.sharesRoom(other, await myRooms()))) changed.add(other);
      }
      for (const signed of await this.deps.keys.signaturesChangedBetween(userId, from.device_lists, to.device_lists)) changed.add(signed);
    }

    if (from.events < to.events) {
      const memberships = await this.membershipChanges(userId, from.events, to.events, myRooms);
      for (const roomId of memberships.joinedRooms)
        for (const member of await this.deps.roomState.members(roomId, 'join')) changed.add(member);
      for (const other of memberships.arrived) changed.add(other);
      const candidates = new Set(memberships.departed);
      for (const roomId of memberships.leftRooms)
        for (const member of await this.deps.roomState.members(roomId, 'join')) candidates.add(member);
      for (const other of candidates) {
        if (other !== userId && !(await this.sharesRoom(other, await myRooms()))) left.add(other);
      }
    }
    for (const other of left) changed.delete(other);
    return { changed: [...changed], left: [...left] };
  }

  /**
   * Whether the device-list changes in the range can concern the user, from the notifier's recent
   * rows when they reach back that far: most syncs woken by other streams skip the query.
   */
  private async mayConcern(userId: string, from: number, to: number, myRooms: () => Promise<Set<string>>): Promise<boolean> {
    const rows = this.deps.notifier.rowsBetween('device_lists', from, to);
    if (rows === undefined) return true;
    const rooms = await myRooms();
    // A row without rooms may be a signature only its author hears about, or a user in no room.
    return rows.some(
      (row) =>
        row.stream === 'device_lists' && (row.userId === userId || row.roomIds.length === 0 || row.roomIds.some((r) => rooms.has(r))),
    );
  }

  private async sharesRoom(other: string, rooms: ReadonlySet<string>): Promise<boolean> {
    return (await this.deps.memberships.of(other)).some((m) => m.membership === 'join' && rooms.has(m.room_id));
  }

  /**
   * Rooms the user newly joined or left, and other users who newly came into (joined, invited,
   * knocking) or went out of the user's joined rooms, comparing memberships at `from` and `to`.
   */
  private async membershipChanges(
    userId: string,
    from: number,
    to: number,
    myRooms: () => Promise<Set<string>>,
  ): Promise<{ joinedRooms: string[]; leftRooms: string[]; arrived: string[]; departed: string[] }> {
    const result = { joinedRooms: [] as string[], leftRooms: [] as string[], arrived: [] as string[], departed: [] as string[] };
    const { roomState, memberships } = this.deps;
    // Member events in the range, per room: the notifier's recent rows, or the database.
    const members = new Map<string, Set<string>>();
    const add = (roomId: string, member: string) => {
      let set = members.get(roomId);
      if (!set) members.set(roomId, (set = new Set()));
      set.add(member);
    };
    const rows = this.deps.notifier.rowsBetween('events', from, to);
    if (rows) {
      for (const row of rows)
        if (row.stream === 'events' && row.type === 'm.room.member' && row.stateKey !== undefined) add(row.roomId, row.stateKey);
      if (members.size === 0) return result;
    } else {
      for (const change of await memberships.changesBetween(userId, from, to)) add(change.room_id, userId);
      for (const roomId of await myRooms()) {
        for (const change of await roomState.stateRowChangesBetween(roomId, from, to))
          if (change.type === 'm.room.member') add(roomId, change.state_key);
      }
    }
    const rooms = await myRooms();
    for (const [roomId, users] of members) {
      const mine = users.has(userId);
      if (!mine && !rooms.has(roomId)) continue;
      const keys = [...users].map((u) => ['m.room.member', u] as const);
      // The membership intervals covering `from`..`to`: the first is each user's membership at
      // `from`, the last the one at `to`.
      const intervals = await roomState.intervalsOverlapping(roomId, keys, from, to);
      const before = new Map<string, string | null>();
      const after = new Map<string, string | null>();
      for (const interval of intervals) {
        if (Number(interval.from_stream) <= from) before.set(interval.state_key, interval.membership);
        if (Number(interval.from_stream) <= to) after.set(interval.state_key, interval.membership);
      }
      for (const member of users) {
        const was = before.get(member) ?? null;
        const is = after.get(member) ?? null;
        if (member === userId) {
          if (is === 'join' && was !== 'join') result.joinedRooms.push(roomId);
          else if (was === 'join' && is !== 'join') result.leftRooms.push(roomId);
        } else if (rooms.has(roomId)) {
          const wasIn = was !== null && SHARED_MEMBERSHIPS.has(was);
          const isIn = is !== null && SHARED_MEMBERSHIPS.has(is);
          if (isIn && !wasIn) result.arrived.push(member);
          else if (wasIn && !isIn) result.departed.push(member);
        }
      }
    }
    return result;
  }
}
