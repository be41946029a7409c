// Server-side key backups (S:data/api/client-server/key_backup.yaml; end_to_end_encryption.md
// §Server-side key backups; `Syn:synapse/handlers/e2e_room_keys.py`).
//
// A backup is a numbered version with an algorithm and `auth_data`; keys may only be written to
// the newest version that is not deleted. The keys themselves are opaque: the server keeps, per
// session, the copy the spec's rules call better. Writes of one user run one after another, so a
// comparison and the write that follows it see the same stored key; the etag counts the changes.

import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { Errors, type MatrixError } from '../../errors.js';
import type { BackupVersionRow, KeyBackupStore, RoomKeyData, RoomKeyRow } from '../../storage/key-backup-store.js';
import { KeyedQueue } from '../../streams/stream-writer.js';
import { canonicalKeyJson } from './key-json.js';

export interface BackupInfo {
  version: string;
  algorithm: string;
  auth_data: JsonObject;
  count: number;
  etag: string;
}

export interface BackupUpdate {
  etag: string;
  count: number;
}

/** `sessions` of a room: session id → key data, as clients send and get them. */
export type RoomSessions = Record<string, JsonObject>;

function unknownVersion(): MatrixError {
  return Errors.notFound('Unknown backup version');
}

/** Version ids are the decimal numbers this server hands out; anything else names no backup. */
function versionNumber(version: string): number | undefined {
  return /^[1-9]\d{0,14}$/.test(version) ? Number(version) : undefined;
}

/** The key data of one session (key_backup_data.yaml), checked. */
export function checkRoomKey(value: unknown, where: string): RoomKeyData {
  if (!isJsonObject(value)) throw Errors.badJson(`${where} must be an object`);
  const integer = (field: string): number => {
    const v = value[field];
    if (v === undefined) throw Errors.missingParam(`${where}: missing '${field}'`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw Errors.badJson(`${where}: '${field}' must be a non-negative integer`);
    return v;
  };
  const first_message_index = integer('first_message_index');
  const forwarded_count = integer('forwarded_count');
  if (value.is_verified === undefined) throw Errors.missingParam(`${where}: missing 'is_verified'`);
  if (typeof value.is_verified !== 'boolean') throw Errors.badJson(`${where}: 'is_verified' must be a boolean`);
  if (value.session_data === undefined) throw Errors.missingParam(`${where}: missing 'session_data'`);
  if (!isJsonObject(value.session_data)) throw Errors.badJson(`${where}: 'session_data' must be an object`);
  return {
    first_message_index,
    forwarded_count,
    is_verified: value.is_verified,
    session_data: canonicalKeyJson(value.session_data, `${where}.session_data`),
  };
}

function clientKey(row: RoomKeyRow): JsonObject {
  return {
    first_message_index: Number(row.first_message_index),
    forwarded_count: Number(row.forwarded_count),
    is_verified: Number(row.is_verified) === 1,
    session_data: JSON.parse(row.session_data) as JsonValue,
  };
}

export class KeyBackupHandler {
  private readonly queue = new KeyedQueue();

  constructor(private readonly store: KeyBackupStore) {}

  /** `POST /room_keys/version`: a new backup, which becomes the current one. */
  createVersion(userId: string, body: JsonObject): Promise<{ version: string }> {
    const { algorithm, authData } = this.versionFields(body);
    return this.queue.run(userId, async () => ({ version: String(await this.store.create(userId, algorithm, authData)) }));
  }

  /** `GET /room_keys/version[/{version}]`: the current backup, or a given one. */
  async versionInfo(userId: string, version: string | undefined): Promise<BackupInfo> {
    const row = version === undefined ? await this.store.current(userId) : await this.liveVersion(userId, version);
    if (!row) throw Errors.notFound(version === undefined ? 'No current backup version' : 'Unknown backup version');
    return {
      version: String(row.version),
      algorithm: row.algorithm,
      auth_data: JSON.parse(row.auth_data) as JsonObject,
      count: await this.store.count(userId, Number(row.version)),
      etag: String(row.etag),
    };
  }

  /** `PUT /room_keys/version/{version}`: only `auth_data` may change. */
  updateVersion(userId: string, version: string, body: JsonObject): Promise<void> {
    const { algorithm, authData } = this.versionFields(body);
    if (body.version !== undefined && body.version !== version) throw Errors.invalidParam('Version in body does not match');
    return this.queue.run(userId, async () => {
      const row = await this.liveVersion(userId, version);
      if (!row) throw unknownVersion();
      if (row.algorithm !== algorithm) throw Errors.invalidParam('Algorithm does not match');
      await this.store.setAuthData(userId, Number(row.version), authData);
    });
  }

  /** `DELETE /room_keys/version/{version}`: succeeds again for a backup already deleted (the spec). */
  deleteVersion(userId: string, version: string): Promise<void> {
    return this.queue.run(userId, async () => {
      const number = versionNumber(version);
      const row = number === undefined ? undefined : await this.store.version(userId, number);
      if (!row) throw unknownVersion();
      if (Number(row.deleted) === 0) await this.store.delete(userId, Number(row.version));
    });
  }

  /** `PUT /room_keys/keys[...]`: stores the keys that are better than the stored ones. */
  putKeys(userId: string, version: string, rooms: Record<string, RoomSessions>): Promise<BackupUpdate> {
    const uploads: Array<{ roomId: string; sessionId: string; key: RoomKeyData }> = [];
    for (const [roomId, sessions] of Object.entries(rooms)) {
      for (const [sessionId, key] of Object.entries(sessions))
        uploads.push({ roomId, sessionId, key: checkRoomKey(key, `${roomId}/${sessionId}`) });
    }
    return this.queue.run(userId, async () => {
      const current = await this.store.current(userId);
      const number = versionNumber(version);
      if (!current || number !== Number(current.version)) {
        const named = number === undefined ? undefined : await this.store.version(userId, number);
        if (!named || Number(named.deleted) === 1) throw unknownVersion();
        throw Errors.wrongRoomKeysVersion(current ? String(current.version) : null);
      }
      const backup = Number(current.version);
      return this.store.transaction(async (tx) => {
        let changed = false;
        // The comparison with the stored key is made by the statement itself (the spec's order; Synapse
        // lets a lower index replace a verified key with an unverified one, the spec does not).
        for (const upload of uploads) {
          if (await this.store.putKeyIfBetter(tx, userId, backup, upload.roomId, upload.sessionId, upload.key)) changed = true;
        }
        const etag = changed ? await this.store.bumpEtag(tx, userId, backup) : Number(current.etag);
        return { etag: String(etag), count: await this.store.count(userId, backup, tx) };
      });
    });
  }

  /** `GET /room_keys/keys[...]`: the stored keys, by room and session. */
  async getKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<Record<string, RoomSessions>> {
    const row = await this.liveVersion(userId, version);
    if (!row) throw unknownVersion();
    const rooms: Record<string, RoomSessions> = {};
    for (const key of await this.store.keys(userId, Number(row.version), roomId, sessionId))
      (rooms[key.room_id] ??= {})[key.session_id] = clientKey(key);
    return rooms;
  }

  /** `DELETE /room_keys/keys[...]`. */
  deleteKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackupUpdate> {
    return this.queue.run(userId, async () => {
      const row = await this.liveVersion(userId, version);
      if (!row) throw unknownVersion();
      const backup = Number(row.version);
      return this.store.transaction(async (tx) => {
        const deleted = await this.store.deleteKeys(tx, userId, backup, roomId, sessionId);
        const etag = deleted > 0 ? await this.store.bumpEtag(tx, userId, backup) : Number(row.etag);
        return { etag: String(etag), count: await this.store.count(userId, backup, tx) };
      });
    });
  }

  private async liveVersion(userId: string, version: string): Promise<BackupVersionRow | undefined> {
    const number = versionNumber(version);
    const row = number === undefined ? undefined : await this.store.version(userId, number);
    return row && Number(row.deleted) === 0 ? row : undefined;
  }

  private versionFields(body: JsonObject): { algorithm: string; authData: string } {
    const { algorithm, auth_data } = body;
    if (algorithm === undefined) throw Errors.missingParam("Missing 'algorithm'");
    if (typeof algorithm !== 'string') throw Errors.badJson("'algorithm' must be a string");
    if (auth_data === undefined) throw Errors.missingParam("Missing 'auth_data'");
    if (!isJsonObject(auth_data)) throw Errors.badJson("'auth_data' must be an object");
    return { algorithm, authData: canonicalKeyJson(auth_data, 'auth_data') };
  }
}
