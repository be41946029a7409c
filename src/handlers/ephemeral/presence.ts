// Presence (S:content/client-server-api/modules/presence.md).
//
// A simpler model than Synapse's per-device state machine, with the same visible behaviour:
//   - `PUT /presence/{userId}/status` sets the state and message (none given clears it, as in
//     Synapse) and keeps the user from timing out; being set online counts as activity;
//   - a /sync marks the user `online` (or `unavailable` with `set_presence=unavailable`; nothing
//     with `offline`) and counts as activity. The syncing process forwards this to the presence
//     writer at most once per `SYNC_RELAY_INTERVAL_MS` per user while nothing changes, and the
//     writer writes the row only when the state changes (plus an activity-time refresh at most
//     once a minute), so a busy sync loop costs nearly nothing;
//   - a user nobody has seen for `OFFLINE_AFTER_MS` (no sync, no PUT) goes `offline`. Syncs
//     long-poll (typically 30 s) and are relayed once a minute, so the timeout is longer than
//     Synapse's 30 s after the last sync ended;
//   - `currently_active` is true while online and active within the last two minutes, computed
//     when served; `last_active_ago` is relative to the time it is served.
// Only visible changes (state, message) take a stream position and wake syncs.

import type { JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { PresenceRow, PresenceStore } from '../../storage/presence-store.js';
import { StreamIdGenerator } from '../../streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { Logger } from '../../util/log.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { Requester } from '../kernel/requester.js';
import { requireSelf } from './checks.js';

export const PRESENCE_STATES = ['online', 'offline', 'unavailable'] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];

export const SYNC_RELAY_INTERVAL_MS = 60_000;
export const OFFLINE_AFTER_MS = 150_000;
const CURRENTLY_ACTIVE_MS = 120_000;
const SWEEP_INTERVAL_MS = 15_000;

export function isPresenceState(value: unknown): value is PresenceState {
  return typeof value === 'string' && (PRESENCE_STATES as readonly string[]).includes(value);
}

/** The presence writer, as the API and /sync reach it (in worker mode over RPC). */
export interface PresenceWriterApi {
  /** Sets the state and message (a missing message clears it, as in Synapse). */
  setPresence(userId: string, presence: PresenceState, statusMsg: string | null): Promise<void>;
  /** The user is syncing with this presence (`online` or `unavailable`). */
  userSyncing(userId: string, presence: PresenceState): Promise<void>;
}

export interface PresenceWriterDeps {
  transactions: TransactionRunner;
  store: PresenceStore;
  roomState: RoomStateReader;
  bus: ReplicationBus;
  instanceName: string;
  now: () => number;
  log: Logger;
}

export class PresenceWriter implements PresenceWriterApi {
  private readonly queue = new KeyedQueue();
  /** When each user not offline was last seen (sync or PUT). */
  private readonly lastSeen = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  private constructor(
    private readonly deps: PresenceWriterDeps,
    private readonly publisher: StreamPublisher,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  static async create(deps: PresenceWriterDeps): Promise<PresenceWriter> {
    const ids = new StreamIdGenerator(await deps.store.maxStreamId());
    const writer = new PresenceWriter(deps, new StreamPublisher('presence', ids, deps.bus, deps.instanceName));
    // Users left online by the previous run time out like everyone else.
    for (const row of await deps.store.notOffline())
      writer.lastSeen.set(row.user_id, Math.max(Number(row.last_user_sync_ts), Number(row.last_active_ts)));
    return writer;
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  setPresence(userId: string, presence: PresenceState, statusMsg: string | null): Promise<void> {
    const now = this.deps.now();
    if (presence === 'offline') this.lastSeen.delete(userId);
    else this.lastSeen.set(userId, now);
    return this.queue.run(userId, async () => {
      const row = await this.deps.store.get(userId);
      await this.write(userId, {
        state: presence,
        status_msg: statusMsg,
        // Only being online is activity; going idle or offline keeps the last active time.
        last_active_ts: presence === 'online' ? now : Number(row?.last_active_ts ?? 0),
        last_user_sync_ts: Number(row?.last_user_sync_ts ?? 0),
      });
    });
  }

  userSyncing(userId: string, presence: PresenceState): Promise<void> {
    if (presence === 'offline') return Promise.resolve();
    const now = this.deps.now();
    this.lastSeen.set(userId, now);
    return this.queue.run(userId, async () => {
      const row = await this.deps.store.get(userId);
      if (!row || row.state !== presence) {
        await this.write(userId, { state: presence, status_msg: row?.status_msg ?? null, last_active_ts: now, last_user_sync_ts: now });
      } else if (now - Number(row.last_user_sync_ts) >= SYNC_RELAY_INTERVAL_MS) {
        await this.deps.store.touch(userId, now, now);
      }
    });
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** Marks users nobody has seen for a while offline (run periodically; `now` for tests). */
  async sweep(now = this.deps.now()): Promise<void> {
    for (const [userId, seen] of [...this.lastSeen]) {
      if (now - seen <= OFFLINE_AFTER_MS) continue;
      this.lastSeen.delete(userId);
      try {
        await this.queue.run(userId, async () => {
          if (this.lastSeen.has(userId)) return; // seen again meanwhile
          const row = await this.deps.store.get(userId);
          if (!row || row.state === 'offline') return;
          await this.write(userId, {
            state: 'offline',
            status_msg: row.status_msg,
            last_active_ts: Number(row.last_active_ts),
            last_user_sync_ts: Number(row.last_user_sync_ts),
          });
        });
      } catch (err) {
        // The database is unavailable (or closing): the next sweep tries again, unless the user
        // was seen meanwhile (the next start times the user out again anyway).
        if (!this.lastSeen.has(userId)) this.lastSeen.set(userId, seen);
        this.deps.log.debug({ err, userId }, 'presence timeout not recorded; trying again on the next sweep');
      }
    }
  }

  private async write(
    userId: string,
    fields: Pick<PresenceRow, 'state' | 'status_msg' | 'last_active_ts' | 'last_user_sync_ts'>,
  ): Promise<void> {
    const roomIds = await this.deps.roomState.roomsOf(userId);
    await this.publisher.write(1, async ([position]) => {
      await this.deps.transactions.transaction((tx) =>
        this.deps.store.put(tx, { user_id: userId, ...fields, currently_active: fields.state === 'online' ? 1 : 0, stream_id: position! }),
      );
      return { value: undefined, rows: [{ stream: 'presence', userId, roomIds }] };
    });
  }
}

/** Presence as clients see it: `GET /presence/{userId}/status` and the m.presence events of /sync. */
export class PresenceReader {
  constructor(
    private readonly store: PresenceStore,
    private readonly roomState: RoomStateReader,
    private readonly now: () => number,
  ) {}

  /** The content of a presence event (and of `GET …/status`). */
  format(row: PresenceRow | undefined): JsonObject {
    if (!row) return { presence: 'offline' };
    const now = this.now();
    const content: JsonObject = { presence: row.state };
    const lastActive = Number(row.last_active_ts);
    if (lastActive > 0) content.last_active_ago = Math.max(0, now - lastActive);
    if (row.status_msg) content.status_msg = row.status_msg;
    if (row.state === 'online') content.currently_active = now - lastActive <= CURRENTLY_ACTIVE_MS;
    return content;
  }

  async get(requester: Requester, userId: string): Promise<JsonObject> {
    if (requester.userId !== userId && !(await this.sharesRoom(requester.userId, userId))) {
      throw Errors.forbidden('You are not allowed to see their presence.');
    }
    return this.format(await this.store.get(userId));
  }

  /** m.presence events of the user and of users sharing a room with them, changed in `(from, to]`. */
  async changes(userId: string, from: number, to: number): Promise<JsonObject[]> {
    let rows: PresenceRow[];
    if (from === 0) {
      const visible = await this.usersSharingRooms(userId);
      // An initial sync leaves out users who are offline: they are the default.
      rows = (await this.store.getMany([...visible])).filter((r) => Number(r.stream_id) <= to && r.state !== 'offline');
    } else {
      rows = await this.store.changedBetween(from, to);
      if (rows.length === 0) return [];
      const myRooms = new Set(await this.roomState.roomsOf(userId));
      const visible: PresenceRow[] = [];
      for (const row of rows) {
        if (row.user_id === userId || (await this.roomState.roomsOf(row.user_id)).some((r) => myRooms.has(r))) visible.push(row);
      }
      rows = visible;
    }
    return rows.map((row) => ({ type: 'm.presence', sender: row.user_id, content: this.format(row) }));
  }

  private async sharesRoom(a: string, b: string): Promise<boolean> {
    const roomsOfA = new Set(await this.roomState.roomsOf(a));
    return (await this.roomState.roomsOf(b)).some((r) => roomsOfA.has(r));
  }

  private async usersSharingRooms(userId: string): Promise<Set<string>> {
    const users = new Set<string>([userId]);
    for (const roomId of await this.roomState.roomsOf(userId))
      for (const member of await this.roomState.members(roomId, 'join')) users.add(member);
    return users;
  }
}

/** `PUT /presence/{userId}/status`. */
export class PresenceHandler {
  constructor(
    readonly reader: PresenceReader,
    private readonly writer: PresenceWriterApi,
  ) {}

  get(requester: Requester, userId: string): Promise<JsonObject> {
    return this.reader.get(requester, userId);
  }

  async set(requester: Requester, userId: string, presence: PresenceState, statusMsg: string | null): Promise<void> {
    requireSelf(requester, userId, 'Can only set your own presence state');
    await this.writer.setPresence(userId, presence, statusMsg);
  }
}
