// What /sync reads of the per-user and ephemeral streams (the contract is src/handlers/sync/sync-sources.ts).
// Everything here only reads, except `acknowledgeToDevice` (deleting delivered messages is not a
// stream change) and `userSyncing`, which forwards to the presence writer at most once a minute
// per user while nothing changes.

import type { JsonObject } from '../../core/json.js';
import type { ReplicationBus } from '../../streams/bus.js';
import { GLOBAL_ROOM, type AccountDataStore } from '../../storage/account-data-store.js';
import type { ReceiptsStore } from '../../storage/receipts-store.js';
import { UNTHREADED } from '../../storage/receipts-store.js';
import type { AccountDataChanges, AccountDataEntry, SyncSources, UnreadCounts } from '../sync/sync-sources.js';
import { PUSH_RULES_TYPE } from './account-data.js';
import { isPresenceState, SYNC_RELAY_INTERVAL_MS, type PresenceReader, type PresenceWriterApi } from './presence.js';
import type { PushActions } from './push-actions.js';
import type { PushRulesReader } from './push-rules.js';
import { READ_PRIVATE } from './receipts.js';
import type { ToDeviceReader } from './to-device.js';
import type { TypingReader } from './typing.js';

export type EphemeralSyncSources = SyncSources;

export interface SyncSourcesDeps {
  bus: ReplicationBus;
  now: () => number;
  typing: TypingReader;
  receipts: ReceiptsStore;
  accountData: AccountDataStore;
  pushRules: PushRulesReader;
  toDevice: ToDeviceReader;
  presence: PresenceReader;
  presenceWriter: PresenceWriterApi;
  pushActions: PushActions;
}

/** The sync sources, and a function that stops their bus subscription (shutdown). */
export function createSyncSources(deps: SyncSourcesDeps): { sources: EphemeralSyncSources; close: () => void } {
  // The presence last forwarded per user; dropped when the user's presence changes elsewhere (a
  // PUT, a timeout), so the next sync forwards again.
  const relayed = new Map<string, { presence: string; at: number }>();
  const close = deps.bus.subscribe((update) => {
    if (update.stream !== 'presence') return;
    for (const row of update.rows) if (row.stream === 'presence') relayed.delete(row.userId);
  });

  const sources: EphemeralSyncSources = {
    typing: (roomIds, since) => deps.typing.changedSince(roomIds, since),

    async receipts(userId, roomIds, from, to) {
      const byRoom = new Map<string, JsonObject>();
      for (const row of await deps.receipts.changedBetween(roomIds, from, to)) {
        if (row.receipt_type === READ_PRIVATE && row.user_id !== userId) continue;
        let content = byRoom.get(row.room_id);
        if (!content) byRoom.set(row.room_id, (content = {}));
        const byType = (content[row.event_id] ??= {}) as JsonObject;
        const byUser = (byType[row.receipt_type] ??= {}) as JsonObject;
        const data = JSON.parse(row.data) as JsonObject;
        byUser[row.user_id] = row.thread_id === UNTHREADED ? data : { ...data, thread_id: row.thread_id };
      }
      return byRoom;
    },

    async accountData(userId, from, to, pushRulesFrom, pushRulesTo): Promise<AccountDataChanges> {
      const changes: AccountDataChanges = { global: [], rooms: new Map() };
      for (const row of await deps.accountData.changedBetween(userId, from, to)) {
        const entry: AccountDataEntry = { type: row.type, content: JSON.parse(row.content) as JsonObject };
        if (row.room_id === GLOBAL_ROOM) changes.global.push(entry);
        else {
          const list = changes.rooms.get(row.room_id) ?? [];
          list.push(entry);
          changes.rooms.set(row.room_id, list);
        }
      }
      const rulesChangedAt = await deps.pushRules.changedAt(userId);
      if (rulesChangedAt > pushRulesFrom && rulesChangedAt <= pushRulesTo) {
        changes.global.push({ type: PUSH_RULES_TYPE, content: (await deps.pushRules.ruleSet(userId)) as unknown as JsonObject });
      }
      return changes;
    },

    toDevice: (userId, deviceId, from, to, limit) => deps.toDevice.pending(userId, deviceId, from, to, limit),

    acknowledgeToDevice: (userId, deviceId, position) => deps.toDevice.acknowledge(userId, deviceId, position),

    presence: (userId, from, to) => deps.presence.changes(userId, from, to),

    async userSyncing(userId, setPresence) {
      if (setPresence === 'offline') return;
      const presence = isPresenceState(setPresence) ? setPresence : 'online';
      const now = deps.now();
      const last = relayed.get(userId);
      if (last && last.presence === presence && now - last.at < SYNC_RELAY_INTERVAL_MS) return;
      relayed.set(userId, { presence, at: now });
      try {
        await deps.presenceWriter.userSyncing(userId, presence);
      } catch (err) {
        relayed.delete(userId);
        throw err;
      }
    },

    async unreadCounts(userId, roomIds) {
      const counts = new Map<string, UnreadCounts>();
      for (const [roomId, room] of await deps.pushActions.unread(userId, roomIds)) counts.set(roomId, room.total);
      return counts;
    },

    unreadNotifications: (userId, roomIds) => deps.pushActions.unread(userId, roomIds),
  };
  return { sources, close };
}
