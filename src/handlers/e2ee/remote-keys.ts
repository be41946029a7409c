// Other servers' users' keys as their servers send them (spec: server-server API §End-to-End
// Encryption, §Device Management): each key checked before it is stored or served, and which
// remote users we track (share a room with one of our users).
//
// Checks (spec: client-server API §Tracking the device list for a user, "the client must check
// the signature"; the server checks what it caches too, so a forged key never reaches a client):
// device keys name the user and device they are listed under and carry the device's own ed25519
// signature; cross-signing keys are the user's, of the right usage, one ed25519 key; a
// self-signing key is signed by the master key beside it. Anything else is left out.

import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { verifyJsonSignature } from '../../core/signing.js';
import { isLocalUser } from '../ephemeral/checks.js';
import type { UserMemberships } from '../kernel/memberships.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import { checkCrossSigningKey, checkDeviceKeys } from './key-json.js';

/** A device's keys if they are well-formed and signed by the device itself, else undefined. */
export function verifiedDeviceKeys(keys: unknown, userId: string, deviceId: string): JsonObject | undefined {
  try {
    return checkDeviceKeys(keys, userId, deviceId);
  } catch {
    return undefined;
  }
}

/** A remote user's cross-signing key of `usage` if well-formed (and, for self-signing, signed by `master`). */
export function verifiedCrossSigningKey(
  key: unknown,
  userId: string,
  usage: 'master' | 'self_signing',
  master?: JsonObject,
): { json: JsonObject; publicKey: string } | undefined {
  if (key === undefined || key === null) return undefined;
  try {
    const checked = checkCrossSigningKey(key, userId, usage);
    if (usage === 'self_signing') {
      if (!master) return undefined;
      const signer = checkCrossSigningKey(master, userId, 'master');
      if (!verifyJsonSignature(checked.json, userId, signer.keyId, signer.verifyKey)) return undefined;
    }
    return { json: checked.json, publicKey: checked.publicKey };
  } catch {
    return undefined;
  }
}

export interface RemoteUserDevices {
  userId: string;
  streamId: number;
  devices: Array<{ deviceId: string; keys: JsonObject | undefined; displayName: string | undefined }>;
  masterKey: { json: JsonObject; publicKey: string } | undefined;
  selfSigningKey: { json: JsonObject; publicKey: string } | undefined;
}

/**
 * A `GET /user/devices/{userId}` answer (S:data/api/server-server/user_devices.yaml), checked:
 * undefined when it is not about the user or has no stream id; devices whose keys do not verify
 * are kept without keys (the device exists, but nobody can encrypt to it with forged keys).
 */
export function parseUserDevicesAnswer(answer: JsonValue, userId: string): RemoteUserDevices | undefined {
  if (!isJsonObject(answer) || answer.user_id !== userId) return undefined;
  const streamId = answer.stream_id;
  if (typeof streamId !== 'number' || !Number.isSafeInteger(streamId) || streamId < 0) return undefined;
  if (!Array.isArray(answer.devices)) return undefined;
  const devices: RemoteUserDevices['devices'] = [];
  const seen = new Set<string>();
  for (const device of answer.devices) {
    if (!isJsonObject(device) || typeof device.device_id !== 'string' || device.device_id === '' || seen.has(device.device_id)) continue;
    seen.add(device.device_id);
    const name = device.device_display_name;
    devices.push({
      deviceId: device.device_id,
      keys: verifiedDeviceKeys(device.keys, userId, device.device_id),
      displayName: typeof name === 'string' ? name : undefined,
    });
  }
  const masterKey = verifiedCrossSigningKey(answer.master_key, userId, 'master');
  const selfSigningKey = verifiedCrossSigningKey(answer.self_signing_key, userId, 'self_signing', masterKey?.json);
  return { userId, streamId, devices, masterKey, selfSigningKey };
}

/**
 * A `POST /user/keys/query` answer (S:data/api/server-server/user_keys.yaml) from `server`,
 * keeping only what verifies and belongs to that server's users that were asked for.
 */
export function verifiedKeysQueryAnswer(
  answer: JsonValue,
  server: string,
  asked: ReadonlyMap<string, readonly string[]>,
): {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
} {
  const result = {
    device_keys: {} as Record<string, Record<string, JsonObject>>,
    master_keys: {} as Record<string, JsonObject>,
    self_signing_keys: {} as Record<string, JsonObject>,
  };
  if (!isJsonObject(answer)) return result;
  const section = (name: string): JsonObject => (isJsonObject(answer[name]) ? answer[name] : {});
  const deviceKeys = section('device_keys');
  const masterKeys = section('master_keys');
  const selfSigningKeys = section('self_signing_keys');
  for (const [userId, deviceIds] of asked) {
    if (!isLocalUser(userId, server)) continue;
    const devices = deviceKeys[userId];
    const wanted = new Set(deviceIds);
    const verified: Record<string, JsonObject> = {};
    if (isJsonObject(devices)) {
      for (const [deviceId, keys] of Object.entries(devices)) {
        if (wanted.size > 0 && !wanted.has(deviceId)) continue;
        const ok = verifiedDeviceKeys(keys, userId, deviceId);
        if (ok) verified[deviceId] = ok;
      }
    }
    result.device_keys[userId] = verified;
    const master = verifiedCrossSigningKey(masterKeys[userId], userId, 'master');
    if (master) result.master_keys[userId] = master.json;
    const selfSigning = verifiedCrossSigningKey(selfSigningKeys[userId], userId, 'self_signing', master?.json);
    if (selfSigning) result.self_signing_keys[userId] = selfSigning.json;
  }
  return result;
}

/**
 * Whether we track a remote user's device list: they are joined to a room where one of our users
 * is joined (spec: server-server API §Device Management: "servers must track the device lists of
 * users they share a room with").
 */
export class RemoteUserTracking {
  constructor(private readonly deps: { serverName: string; memberships: UserMemberships; roomState: RoomStateReader }) {}

  async sharesRoomWithLocalUsers(userId: string): Promise<boolean> {
    for (const membership of await this.deps.memberships.of(userId)) {
      if (membership.membership !== 'join') continue;
      const members = await this.deps.roomState.members(membership.room_id, 'join');
      if (members.some((member) => isLocalUser(member, this.deps.serverName))) return true;
    }
    return false;
  }

  /**
   * Whether a cache filled at our events position `filledAt` still follows the user: they share a
   * room with our users now, and one of their current joins began no later than the fill (else
   * they left every room in between, and their server stopped telling us of their changes).
   */
  async cacheFollows(userId: string, filledAt: number): Promise<boolean> {
    const joins = (await this.deps.memberships.of(userId)).filter((m) => m.membership === 'join');
    if (!joins.some((m) => Number(m.from_stream) <= filledAt)) return false;
    return this.sharesRoomWithLocalUsers(userId);
  }
}
