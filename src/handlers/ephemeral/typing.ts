// Typing notifications (S:content/client-server-api/modules/typing_notifications.md).
//
// The typing stream lives in memory on its one writer, with its own positions starting at 0 at
// every start (sync tokens from before a restart are clamped; see streams.ts). Every change,
// including an expiry, takes a position and is published with the room's full list of typers, so
// syncs wake and any process can keep the current lists from the bus alone (`TypingReader`).

import { Errors } from '../../errors.js';
import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import { StreamIdGenerator } from '../../streams/id-generator.js';
import { StreamPublisher } from '../../streams/stream-writer.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { Requester } from '../kernel/requester.js';
import { requireJoined, requireSelf } from './checks.js';

/** Synapse's default when the client gives no timeout, and its ceiling. */
export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;
export const MAX_TYPING_TIMEOUT_MS = 120_000;

/** The typing writer, as the API reaches it (in worker mode over RPC: plain JSON arguments). */
export interface TypingWriterApi {
  /** Marks the user typing for `timeoutMs` (restarting the timer), or not typing. */
  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number): Promise<void>;
}

export class TypingWriter implements TypingWriterApi {
  /** room → typing user → the timer that ends their typing */
  private readonly typers = new Map<string, Map<string, NodeJS.Timeout>>();
  /** room → the typing position of its last change (to catch up a reader that missed some). */
  private readonly changedAt = new Map<string, number>();
  private readonly publisher: StreamPublisher;
  private readonly unsubscribe: () => void;

  constructor(bus: ReplicationBus, instanceName: string) {
    this.publisher = new StreamPublisher('typing', new StreamIdGenerator(0), bus, instanceName);
    // Leaving a room ends typing in it (Synapse `user_left_room`).
    this.unsubscribe = bus.subscribe((update) => {
      for (const row of update.rows) {
        if (row.stream === 'events' && row.type === 'm.room.member' && row.stateKey !== undefined && row.membership !== 'join') {
          void this.stop(row.roomId, row.stateKey);
        }
      }
    });
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  async setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number): Promise<void> {
    if (!typing) return this.stop(roomId, userId);
    let room = this.typers.get(roomId);
    if (!room) this.typers.set(roomId, (room = new Map<string, NodeJS.Timeout>()));
    const existing = room.get(userId);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => void this.stop(roomId, userId), Math.max(0, timeoutMs));
    timer.unref();
    room.set(userId, timer);
    // Refreshing the timeout of someone already typing changes nothing a client sees.
    if (!existing) await this.announce(roomId);
  }

  /** Ends every timer (shutdown). */
  close(): void {
    this.unsubscribe();
    for (const room of this.typers.values()) for (const timer of room.values()) clearTimeout(timer);
    this.typers.clear();
  }

  private async stop(roomId: string, userId: string): Promise<void> {
    const room = this.typers.get(roomId);
    const timer = room?.get(userId);
    if (!room || !timer) return;
    clearTimeout(timer);
    room.delete(userId);
    if (room.size === 0) this.typers.delete(roomId);
    await this.announce(roomId);
  }

  private announce(roomId: string): Promise<void> {
    const userIds = [...(this.typers.get(roomId)?.keys() ?? [])];
    return this.publisher.write(1, ([position]) => {
      this.changedAt.set(roomId, position!);
      return { value: undefined, rows: [{ stream: 'typing', roomId, userIds }] };
    });
  }

  /**
   * The typing rows a reader that has seen up to `from` needs to reach `to`: each room whose typers
   * changed in between, with who types there now (typing lives only in this process's memory).
   */
  rowsBetween(from: number, to: number): StreamRow[] {
    const rows: StreamRow[] = [];
    for (const [roomId, position] of this.changedAt) {
      if (position > from && position <= to) rows.push({ stream: 'typing', roomId, userIds: [...(this.typers.get(roomId)?.keys() ?? [])] });
    }
    return rows;
  }
}

/** The current typers of each room and the typing position of their last change, from the bus. */
export class TypingReader {
  private readonly rooms = new Map<string, { userIds: string[]; position: number }>();
  private readonly unsubscribe: () => void;

  constructor(bus: ReplicationBus) {
    this.unsubscribe = bus.subscribe((update) => {
      if (update.stream !== 'typing') return;
      for (const row of update.rows)
        if (row.stream === 'typing') this.rooms.set(row.roomId, { userIds: row.userIds, position: update.position });
    });
  }

  /**
   * m.typing content for the rooms whose typers changed after `since`; with `since` 0 (an initial
   * sync, or a token clamped after the writer restarted), the rooms where someone is typing.
   */
  changedSince(roomIds: readonly string[], since: number): Map<string, { user_ids: string[] }> {
    const out = new Map<string, { user_ids: string[] }>();
    for (const roomId of roomIds) {
      const entry = this.rooms.get(roomId);
      if (!entry || entry.position <= since) continue;
      if (since === 0 && entry.userIds.length === 0) continue;
      out.set(roomId, { user_ids: [...entry.userIds] });
    }
    return out;
  }

  close(): void {
    this.unsubscribe();
  }
}

/** `PUT /rooms/{roomId}/typing/{userId}`: the rules, then the writer. */
export class TypingHandler {
  constructor(
    private readonly roomState: RoomStateReader,
    private readonly writer: TypingWriterApi,
  ) {}

  async setTyping(requester: Requester, roomId: string, userId: string, typing: boolean, timeoutMs: number | undefined): Promise<void> {
    requireSelf(requester, userId, "Cannot set another user's typing state");
    await requireJoined(this.roomState, roomId, userId);
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
      throw Errors.badJson('timeout must be a non-negative number of milliseconds');
    }
    const timeout = Math.min(timeoutMs ?? DEFAULT_TYPING_TIMEOUT_MS, MAX_TYPING_TIMEOUT_MS);
    await this.writer.setTyping(roomId, userId, typing, timeout);
  }
}
