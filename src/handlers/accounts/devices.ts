// Devices (S:data/api/client-server/device_management.yaml): listing, renaming, deleting, and
// when each was last seen.

import type { Queryable } from '../../storage/database.js';
import type { DeviceRow, UsersStore } from '../../storage/users-store.js';
import { LruCache } from '../../util/lru.js';
import type { AuthHandler } from '../kernel/auth.js';
import type { Requester } from '../kernel/requester.js';

/** A device as clients see it (`definitions/client_device.yaml`); the user agent stays private. */
export interface ClientDevice {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

/** Extra work when devices are deleted, in the same transaction (e.g. their end-to-end keys). */
export type DeviceDeletionStep = (tx: Queryable, userId: string, deviceIds: readonly string[]) => Promise<void>;

/**
 * "Last seen" is written at most this often per device: it is shown rounded anyway ("may be a few
 * minutes out of date"), and writing it on every request would double the write load.
 */
export const LAST_SEEN_INTERVAL_MS = 2 * 60 * 1000;

export class DeviceHandler {
  private readonly deletionSteps: DeviceDeletionStep[] = [];
  private readonly lastSeenWritten = new LruCache<string, number>(100_000);

  constructor(
    private readonly users: UsersStore,
    private readonly auth: AuthHandler,
    private readonly now: () => number = Date.now,
  ) {}

  async list(userId: string): Promise<ClientDevice[]> {
    return (await this.users.listDevices(userId)).map(toClientDevice);
  }

  async get(userId: string, deviceId: string): Promise<ClientDevice | undefined> {
    const row = await this.users.getDevice(userId, deviceId);
    return row && toClientDevice(row);
  }

  /** Renames a device; `undefined` keeps the name. Returns false if the user has no such device. */
  async rename(userId: string, deviceId: string, displayName: string | undefined): Promise<boolean> {
    if (displayName === undefined) return (await this.users.getDevice(userId, deviceId)) !== undefined;
    return this.users.setDeviceDisplayName(userId, deviceId, displayName);
  }

  /**
   * Adds work to every device deletion (the end-to-end encryption area removes keys and records
   * the device-list change here).
   */
  addDeletionStep(step: DeviceDeletionStep): void {
    this.deletionSteps.push(step);
  }

  /**
   * The one way devices are deleted (logout, /devices, deactivation): the devices, their access
   * tokens and whatever the deletion steps add go in one transaction, then the tokens stop working
   * in this process at once. Unknown device ids are ignored.
   */
  async deleteDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    const unique = [...new Set(deviceIds)];
    const removedTokens = await this.users.deleteDevices(userId, unique, async (tx, user, ids) => {
      for (const step of this.deletionSteps) await step(tx, user, ids);
    });
    this.auth.invalidateTokens(removedTokens);
  }

  /** Deletes every device of the user except `keepDeviceId`. */
  async deleteAllDevices(userId: string, keepDeviceId?: string): Promise<void> {
    const ids = (await this.users.listDevices(userId)).map((d) => d.device_id).filter((id) => id !== keepDeviceId);
    await this.deleteDevices(userId, ids);
  }

  /**
   * Notes that a device made a request. Call it for every authenticated request: it writes at most
   * once per `LAST_SEEN_INTERVAL_MS` per device (per process).
   */
  async recordSeen(requester: Requester, ip: string, userAgent: string | undefined): Promise<void> {
    const key = `${requester.userId}\u0000${requester.deviceId}`;
    const now = this.now();
    const last = this.lastSeenWritten.get(key);
    if (last !== undefined && now - last < LAST_SEEN_INTERVAL_MS) return;
    this.lastSeenWritten.set(key, now);
    await this.users.recordDeviceSeen(requester.userId, requester.deviceId, now, ip, userAgent ?? null);
  }
}

function toClientDevice(row: DeviceRow): ClientDevice {
  const device: ClientDevice = { device_id: row.device_id };
  if (row.display_name !== null) device.display_name = row.display_name;
  if (row.last_seen_ip !== null) device.last_seen_ip = row.last_seen_ip;
  if (row.last_seen_ts !== null) device.last_seen_ts = Number(row.last_seen_ts);
  return device;
}
