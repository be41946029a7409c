// Other servers' users' devices, cached while we share a room with them (`remote_device_lists`,
// `remote_device_keys`; schema 0053). Written only by the device_lists writer.

import { inBatches, placeholders } from './batches.js';
import type { Database, Queryable } from './database.js';

export interface RemoteDeviceListRow {
  user_id: string;
  /** The user's server's stream id the cache reflects; null: stale. */
  stream_id: number | null;
  events_position: number;
}

export interface RemoteDeviceRow {
  user_id: string;
  device_id: string;
  /** The device's keys as its server signed them; null: a device without keys. */
  key_json: string | null;
  display_name: string | null;
}

export interface RemoteDevice {
  deviceId: string;
  keyJson: string | null;
  displayName: string | null;
}

export class RemoteDeviceListsStore {
  constructor(private readonly db: Database) {}

  async listOf(userId: string, tx: Queryable = this.db): Promise<RemoteDeviceListRow | undefined> {
    const row = await tx.get<RemoteDeviceListRow>('SELECT user_id, stream_id, events_position FROM remote_device_lists WHERE user_id = ?', [
      userId,
    ]);
    return row && normalise(row);
  }

  async listsOf(userIds: readonly string[]): Promise<Map<string, RemoteDeviceListRow>> {
    const found = new Map<string, RemoteDeviceListRow>();
    for (const batch of inBatches(userIds)) {
      const rows = await this.db.all<RemoteDeviceListRow>(
        `SELECT user_id, stream_id, events_position FROM remote_device_lists WHERE user_id IN (${placeholders(batch.length)})`,
        batch,
      );
      for (const row of rows) found.set(row.user_id, normalise(row));
    }
    return found;
  }

  async devicesOf(userIds: readonly string[]): Promise<RemoteDeviceRow[]> {
    const rows: RemoteDeviceRow[] = [];
    for (const batch of inBatches(userIds)) {
      rows.push(
        ...(await this.db.all<RemoteDeviceRow>(
          `SELECT user_id, device_id, key_json, display_name FROM remote_device_keys WHERE user_id IN (${placeholders(batch.length)})`,
          batch,
        )),
      );
    }
    return rows;
  }

  /** The whole list after a resync: every device replaced, the cache fresh at `streamId`. */
  async replaceDevices(
    tx: Queryable,
    userId: string,
    streamId: number,
    devices: readonly RemoteDevice[],
    eventsPosition: number,
    now: number,
  ): Promise<void> {
    await tx.run('DELETE FROM remote_device_keys WHERE user_id = ?', [userId]);
    for (const device of devices) await this.putDevice(tx, userId, device);
    await this.setList(tx, userId, streamId, eventsPosition, now);
  }

  /** One device changed (`m.device_list_update`) or, with `device` undefined, `deviceId` deleted. */
  async updateDevice(
    tx: Queryable,
    userId: string,
    streamId: number,
    deviceId: string,
    device: RemoteDevice | undefined,
    eventsPosition: number,
    now: number,
  ): Promise<void> {
    if (device) await this.putDevice(tx, userId, device);
    else await tx.run('DELETE FROM remote_device_keys WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    await this.setList(tx, userId, streamId, eventsPosition, now);
  }

  /** The cache must be fetched again before it is used. */
  async markStale(tx: Queryable, userId: string, now: number): Promise<void> {
    await tx.run('UPDATE remote_device_lists SET stream_id = NULL, updated_ts = ? WHERE user_id = ?', [now, userId]);
  }

  private async putDevice(tx: Queryable, userId: string, device: RemoteDevice): Promise<void> {
    await tx.run(
      `INSERT INTO remote_device_keys (user_id, device_id, key_json, display_name) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json, display_name = excluded.display_name`,
      [userId, device.deviceId, device.keyJson, device.displayName],
    );
  }

  private async setList(tx: Queryable, userId: string, streamId: number, eventsPosition: number, now: number): Promise<void> {
    await tx.run(
      `INSERT INTO remote_device_lists (user_id, stream_id, events_position, updated_ts) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, events_position = excluded.events_position,
       updated_ts = excluded.updated_ts`,
      [userId, streamId, eventsPosition, now],
    );
  }
}

function normalise(row: RemoteDeviceListRow): RemoteDeviceListRow {
  return {
    user_id: row.user_id,
    stream_id: row.stream_id === null ? null : Number(row.stream_id),
    events_position: Number(row.events_position),
  };
}
