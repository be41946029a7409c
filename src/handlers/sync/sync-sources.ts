// What /sync needs from each per-user or ephemeral stream. The sync handler asks these for the
// changes between two positions of their stream; the stream's own handler implements them.

import type { JsonObject } from '../../core/json.js';
import type { StreamPositions } from '../../streams/streams.js';

export interface AccountDataEntry {
  type: string;
  content: JsonObject;
}

export interface AccountDataChanges {
  global: AccountDataEntry[];
  /** Room account data (including m.tag and m.fully_read) by room id. */
  rooms: Map<string, AccountDataEntry[]>;
}

export interface UnreadCounts {
  notification_count: number;
  highlight_count: number;
}

/** A room's unread counts: in total, in the main timeline, and per thread root. */
export interface RoomNotifications {
  total: UnreadCounts;
  main: UnreadCounts;
  threads: Map<string, UnreadCounts>;
}

export interface SyncSources {
  /** m.typing content (`{user_ids}`) for rooms whose typing changed after `since` (all rooms with
   * typers when `since` is 0). */
  typing(roomIds: readonly string[], since: number): Map<string, { user_ids: string[] }>;

  /** m.receipt content per room for receipts with `from < stream_id <= to`; private receipts are
   * only included for `userId`. */
  receipts(userId: string, roomIds: readonly string[], from: number, to: number): Promise<Map<string, JsonObject>>;

  /** The user's account data that changed with `from < stream_id <= to` (all of it when
   * `from` is 0), including `m.push_rules` when the user's push rules changed. */
  accountData(userId: string, from: number, to: number, pushRulesFrom: number, pushRulesTo: number): Promise<AccountDataChanges>;

  /** To-device messages for the device with `from < stream_id <= to`, oldest first, at most
   * `limit`; `upTo` is the position of the last one returned (or `to` if none are left). */
  toDevice(userId: string, deviceId: string, from: number, to: number, limit: number): Promise<{ events: JsonObject[]; upTo: number }>;

  /** Deletes the device's messages up to `position`: the client acknowledged them by syncing
   * with a token at or past it. */
  acknowledgeToDevice(userId: string, deviceId: string, position: number): Promise<void>;

  /** m.presence events of users sharing a room with `userId` (and the user), changed with
   * `from < stream_id <= to`. */
  presence(userId: string, from: number, to: number): Promise<JsonObject[]>;

  /** Marks the user as syncing (`set_presence`: online unless `offline`/`unavailable`). */
  userSyncing(userId: string, setPresence: string | undefined): Promise<void>;

  /** Unread notification counts per room, since the user's read receipt in each room. */
  unreadCounts(userId: string, roomIds: readonly string[]): Promise<Map<string, UnreadCounts>>;

  /** The same, split into the main timeline and each thread (by thread root id), for clients
   * that asked for `unread_thread_notifications`. */
  unreadNotifications(userId: string, roomIds: readonly string[]): Promise<Map<string, RoomNotifications>>;
}

/**
 * What end-to-end encryption adds to /sync (end_to_end_encryption.md §Extensions to /sync). Kept
 * apart from `SyncSources` because the ephemeral area builds that object on its own; the services
 * composition merges both into the sources /sync gets.
 */
export interface E2eeSyncSources {
  /** `device_lists`: users to fetch keys for again (`changed`) and users no longer sharing a
   * room (`left`), between two sets of positions (the events stream for membership changes, the
   * device_lists stream for key changes). */
  deviceLists(userId: string, from: StreamPositions, to: StreamPositions): Promise<{ changed: string[]; left: string[] }>;

  /** `device_one_time_keys_count`: the device's unclaimed one-time keys per algorithm. */
  oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>>;

  /** `device_unused_fallback_key_types`: algorithms whose fallback key has not been handed out. */
  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]>;
}
