// Device identity keys, one-time and fallback keys, and the device_lists stream with its
// signer-only part (`e2e_device_keys`, `e2e_one_time_keys`, `e2e_fallback_keys`,
// `device_lists_stream`, `e2e_user_signature_stream`; schemas 0002 and 0040).

import { BATCH, inBatches, placeholders } from './batches.js';
import type { Database, Queryable } from './database.js';

export interface DeviceKeysRow {
  user_id: string;
  device_id: string;
  key_json: string;
  display_name: string | null;
}

export interface ClaimedKey {
  keyId: string;
  keyJson: string;
}

export class DeviceKeysStore {
  constructor(private readonly db: Database) {}

  // ---- device identity keys ----

  async deviceKeysJson(userId: string, deviceId: string, tx: Queryable = this.db): Promise<string | undefined> {
    const row = await tx.get<{ key_json: string }>('SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?', [
      userId,
      deviceId,
    ]);
    return row?.key_json;
  }

  async setDeviceKeys(tx: Queryable, userId: string, deviceId: string, keyJson: string, now: number): Promise<void> {
    await tx.run(
      `INSERT INTO e2e_device_keys (user_id, device_id, key_json, ts_added) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json, ts_added = excluded.ts_added`,
      [userId, deviceId, keyJson, now],
    );
  }

  /**
   * Device keys of existing devices, with their display names: every device of the users in
   * `allDevicesOf`, and the listed devices in `someDevices`. Keys left behind by a device deleted
   * mid-upload are never served: only rows whose device still exists are returned. (`devices`
   * belongs to UsersStore; it is only joined here, for the display name and the existence test.)
   */
  async deviceKeysOf(allDevicesOf: readonly string[], someDevices: ReadonlyArray<readonly [string, string]>): Promise<DeviceKeysRow[]> {
    const rows: DeviceKeysRow[] = [];
    const select = `SELECT k.user_id, k.device_id, k.key_json, d.display_name
      FROM e2e_device_keys k JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id`;
    for (const batch of inBatches(allDevicesOf)) {
      rows.push(...(await this.db.all<DeviceKeysRow>(`${select} WHERE k.user_id IN (${placeholders(batch.length)})`, batch)));
    }
    for (const batch of inBatches(someDevices, BATCH / 2)) {
      const conditions = batch.map(() => '(k.user_id = ? AND k.device_id = ?)').join(' OR ');
      rows.push(...(await this.db.all<DeviceKeysRow>(`${select} WHERE ${conditions}`, batch.flat())));
    }
    return rows;
  }

  // ---- one-time keys ----

  async oneTimeKeysJson(
    tx: Queryable,
    userId: string,
    deviceId: string,
    keys: ReadonlyArray<readonly [algorithm: string, keyId: string]>,
  ): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const batch of inBatches(keys, BATCH / 2)) {
      const conditions = batch.map(() => '(algorithm = ? AND key_id = ?)').join(' OR ');
      const rows = await tx.all<{ algorithm: string; key_id: string; key_json: string }>(
        `SELECT algorithm, key_id, key_json FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? AND (${conditions})`,
        [userId, deviceId, ...batch.flat()],
      );
      for (const row of rows) found.set(`${row.algorithm}:${row.key_id}`, row.key_json);
    }
    return found;
  }

  async addOneTimeKeys(
    tx: Queryable,
    userId: string,
    deviceId: string,
    keys: ReadonlyArray<{ algorithm: string; keyId: string; keyJson: string }>,
    now: number,
  ): Promise<void> {
    for (const key of keys) {
      await tx.run('INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, ts_added) VALUES (?, ?, ?, ?, ?, ?)', [
        userId,
        deviceId,
        key.algorithm,
        key.keyId,
        key.keyJson,
        now,
      ]);
    }
  }

  /** Unclaimed one-time keys per algorithm. */
  async countOneTimeKeys(userId: string, deviceId: string, tx: Queryable = this.db): Promise<Map<string, number>> {
    const rows = await tx.all<{ algorithm: string; n: number }>(
      'SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? GROUP BY algorithm',
      [userId, deviceId],
    );
    return new Map(rows.map((r) => [r.algorithm, Number(r.n)]));
  }

  /**
   * Removes and returns the device's oldest one-time key of `algorithm`, in one statement: two
   * claims never get the same key. On PostgreSQL the inner select skips keys another claim has
   * locked, so concurrent claims take different keys instead of queueing on the same one; a claim
   * that still loses a race (it read a key that was deleted under it) finds nothing to delete and
   * looks again. Keys of one upload share `ts_added` and come in no particular order (as in
   * Synapse): ordering by `key_id` too could not use the index and sorted the device's whole
   * batch on every claim.
   */
  async claimOneTimeKey(tx: Queryable, userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | undefined> {
    const skipLocked = this.db.dialect === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
    for (;;) {
      const row = await tx.get<{ key_id: string; key_json: string }>(
        `DELETE FROM e2e_one_time_keys
         WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = (
           SELECT key_id FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?
           ORDER BY ts_added LIMIT 1${skipLocked})
         RETURNING key_id, key_json`,
        [userId, deviceId, algorithm, userId, deviceId, algorithm],
      );
      if (row) return { keyId: row.key_id, keyJson: row.key_json };
      const left = await tx.get('SELECT 1 AS one FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? LIMIT 1', [
        userId,
        deviceId,
        algorithm,
      ]);
      if (!left) return undefined;
    }
  }

  // ---- fallback keys ----

  async fallbackKeyJson(tx: Queryable, userId: string, deviceId: string, algorithm: string): Promise<string | undefined> {
    const row = await tx.get<{ key_json: string }>(
      'SELECT key_json FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?',
      [userId, deviceId, algorithm],
    );
    return row?.key_json;
  }

  /** Replaces the device's fallback key of the algorithm; the new key is unused. */
  async setFallbackKey(tx: Queryable, userId: string, deviceId: string, algorithm: string, keyId: string, keyJson: string): Promise<void> {
    await tx.run(
      `INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES (?, ?, ?, ?, ?, 0)
       ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0`,
      [userId, deviceId, algorithm, keyId, keyJson],
    );
  }

  /** The device's fallback key of the algorithm, now marked used (it stays until replaced). */
  async claimFallbackKey(tx: Queryable, userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | undefined> {
    const row = await tx.get<{ key_id: string; key_json: string }>(
      'UPDATE e2e_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ? RETURNING key_id, key_json',
      [userId, deviceId, algorithm],
    );
    return row && { keyId: row.key_id, keyJson: row.key_json };
  }

  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const rows = await this.db.all<{ algorithm: string }>(
      'SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm',
      [userId, deviceId],
    );
    return rows.map((r) => r.algorithm);
  }

  /**
   * Every key a device published (the device is being deleted; its signatures go with
   * `CrossSigningStore.deleteSignaturesOfDevices` in the same transaction).
   */
  async deleteDeviceKeys(tx: Queryable, userId: string, deviceIds: readonly string[]): Promise<void> {
    for (const batch of inBatches(deviceIds)) {
      const list = placeholders(batch.length);
      // Table names written out, so each statement says which table it changes.
      await tx.run(`DELETE FROM e2e_device_keys WHERE user_id = ? AND device_id IN (${list})`, [userId, ...batch]);
      await tx.run(`DELETE FROM e2e_one_time_keys WHERE user_id = ? AND device_id IN (${list})`, [userId, ...batch]);
      await tx.run(`DELETE FROM e2e_fallback_keys WHERE user_id = ? AND device_id IN (${list})`, [userId, ...batch]);
    }
  }

  // ---- the device_lists stream ----

  async maxStreamId(): Promise<number> {
    const devices = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM device_lists_stream');
    const signatures = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM e2e_user_signature_stream');
    return Math.max(Number(devices?.m ?? 0), Number(signatures?.m ?? 0));
  }

  /** The highest position of a device change (`device_lists_stream` alone; catch-up at start-up). */
  async maxDeviceChangeStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM device_lists_stream');
    return Number(row?.m ?? 0);
  }

  /** The user's latest device-list position (0: none), the `stream_id` of `/user/devices`. */
  async latestDeviceChange(userId: string): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM device_lists_stream WHERE user_id = ?', [userId]);
    return Number(row?.m ?? 0);
  }

  /** The users of each device change with `from < stream_id <= to`, in stream order, repeats kept (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ user_id: string }>> {
    return this.db.all('SELECT user_id FROM device_lists_stream WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [from, to]);
  }

  async recordDeviceChanges(tx: Queryable, position: number, userId: string, deviceIds: readonly string[]): Promise<void> {
    for (const deviceId of new Set(deviceIds)) {
      await tx.run('INSERT INTO device_lists_stream (stream_id, user_id, device_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [
        position,
        userId,
        deviceId,
      ]);
    }
  }

  async recordSignatureChanges(tx: Queryable, position: number, fromUserId: string, userIds: readonly string[]): Promise<void> {
    for (const userId of new Set(userIds)) {
      await tx.run('INSERT INTO e2e_user_signature_stream (stream_id, from_user_id, user_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [
        position,
        fromUserId,
        userId,
      ]);
    }
  }

  /** Users with a device-list change with `from < stream_id <= to`. */
  async usersChangedBetween(from: number, to: number): Promise<string[]> {
    const rows = await this.db.all<{ user_id: string }>(
      'SELECT DISTINCT user_id FROM device_lists_stream WHERE stream_id > ? AND stream_id <= ?',
      [from, to],
    );
    return rows.map((r) => r.user_id);
  }

  /** Users whose keys `fromUserId` signed (or whose own user-signing key changed) with `from < stream_id <= to`. */
  async signaturesChangedBetween(fromUserId: string, from: number, to: number): Promise<string[]> {
    const rows = await this.db.all<{ user_id: string }>(
      'SELECT DISTINCT user_id FROM e2e_user_signature_stream WHERE from_user_id = ? AND stream_id > ? AND stream_id <= ?',
      [fromUserId, from, to],
    );
    return rows.map((r) => r.user_id);
  }
}
