// Read receipts and read markers (S:content/client-server-api/modules/receipts.md,
// read_markers.md). A receipt only ever moves forward, compared by the stream ordering of the
// events it points at. `m.fully_read` is not a receipt: it is the room account data of that name.

import { isValidRoomId } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { TransactionRunner } from '../../storage/database.js';
import { UNTHREADED, type ReceiptsStore } from '../../storage/receipts-store.js';
import type { PositionsFor } from '../../streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { EventCache, StoredEvent } from '../kernel/event-cache.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { Requester } from '../kernel/requester.js';
import type { AccountDataWriterApi } from './account-data.js';
import { requireJoined } from './checks.js';
import { MAIN_THREAD, threadOf } from './threads.js';

export const READ = 'm.read';
export const READ_PRIVATE = 'm.read.private';
export const FULLY_READ = 'm.fully_read';
const RECEIPT_TYPES: ReadonlySet<string> = new Set([READ, READ_PRIVATE, FULLY_READ]);

export interface NewReceipt {
  roomId: string;
  userId: string;
  receiptType: string;
  /** `main`, a thread root's event id, or null for an unthreaded receipt. */
  threadId: string | null;
  eventId: string;
  eventStreamOrdering: number;
  ts: number;
}

/** The receipts writer, as the API reaches it (in worker mode over RPC). */
export interface ReceiptsWriterApi {
  /** Stores the receipt unless the user's receipt of that type and thread is already at or past it. */
  putReceipt(receipt: NewReceipt): Promise<boolean>;
}

export class ReceiptsWriter implements ReceiptsWriterApi {
  private readonly queue = new KeyedQueue();

  private constructor(
    private readonly transactions: TransactionRunner,
    private readonly store: ReceiptsStore,
    private readonly publisher: StreamPublisher,
  ) {}

  static async create(deps: {
    transactions: TransactionRunner;
    store: ReceiptsStore;
    bus: ReplicationBus;
    instanceName: string;
    positions: PositionsFor;
  }): Promise<ReceiptsWriter> {
    const ids = await deps.positions('receipts', await deps.store.maxStreamId());
    return new ReceiptsWriter(deps.transactions, deps.store, new StreamPublisher('receipts', ids, deps.bus, deps.instanceName));
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  putReceipt(receipt: NewReceipt): Promise<boolean> {
    const threadId = receipt.threadId ?? UNTHREADED;
    return this.queue.run(`${receipt.roomId}\u0000${receipt.userId}`, async () => {
      const current = await this.store.currentEventOrdering(receipt.roomId, receipt.receiptType, receipt.userId, threadId);
      if (current !== undefined && current >= receipt.eventStreamOrdering) return false;
      return this.publisher.write(1, async ([position]) => {
        await this.transactions.transaction((tx) =>
          this.store.put(tx, {
            room_id: receipt.roomId,
            receipt_type: receipt.receiptType,
            user_id: receipt.userId,
            thread_id: threadId,
            event_id: receipt.eventId,
            event_stream_ordering: receipt.eventStreamOrdering,
            data: JSON.stringify({ ts: receipt.ts }),
            stream_id: position!,
          }),
        );
        return { value: true, rows: [{ stream: 'receipts', roomId: receipt.roomId, userId: receipt.userId }] };
      });
    });
  }
}

/** `POST /rooms/{roomId}/receipt/…` and `POST /rooms/{roomId}/read_markers`. */
export class ReceiptsHandler {
  constructor(
    private readonly roomState: RoomStateReader,
    private readonly eventCache: EventCache,
    private readonly writer: ReceiptsWriterApi,
    private readonly accountData: AccountDataWriterApi,
    private readonly now: () => number,
  ) {}

  async sendReceipt(requester: Requester, roomId: string, receiptType: string, eventId: string, body: JsonObject): Promise<void> {
    if (!isValidRoomId(roomId) || !eventId.startsWith('$')) throw Errors.invalidParam('A valid room ID and event ID must be specified');
    if (!RECEIPT_TYPES.has(receiptType)) throw Errors.invalidParam(`Receipt type must be one of ${[...RECEIPT_TYPES].join(', ')}`);
    let threadId: string | null = null;
    if ('thread_id' in body) {
      const value = body.thread_id;
      if (typeof value !== 'string' || value === '') throw Errors.invalidParam('thread_id field must be a non-empty string');
      if (receiptType === FULLY_READ) throw Errors.invalidParam(`thread_id is not compatible with ${FULLY_READ} receipts`);
      threadId = value;
    }
    await requireJoined(this.roomState, roomId, requester.userId);
    const event = await this.eventInRoom(roomId, eventId);
    if (threadId !== null && !(await this.inThread(event, threadId))) {
      throw Errors.invalidParam(`event_id ${eventId} is not related to thread ${threadId}`);
    }
    if (receiptType === FULLY_READ) await this.accountData.advanceFullyRead(requester.userId, roomId, eventId, event.streamOrdering);
    else await this.put(requester.userId, receiptType, threadId, event);
  }

  async setReadMarkers(
    requester: Requester,
    roomId: string,
    markers: { fullyRead?: string; read?: string; readPrivate?: string },
  ): Promise<void> {
    await requireJoined(this.roomState, roomId, requester.userId);
    // Check every event before moving any marker, so a bad request changes nothing.
    const fullyRead = markers.fullyRead === undefined ? undefined : await this.eventInRoom(roomId, markers.fullyRead);
    const read = markers.read === undefined ? undefined : await this.eventInRoom(roomId, markers.read);
    const readPrivate = markers.readPrivate === undefined ? undefined : await this.eventInRoom(roomId, markers.readPrivate);
    if (fullyRead) await this.accountData.advanceFullyRead(requester.userId, roomId, fullyRead.event.eventId, fullyRead.streamOrdering);
    if (read) await this.put(requester.userId, READ, null, read);
    if (readPrivate) await this.put(requester.userId, READ_PRIVATE, null, readPrivate);
  }

  private async put(userId: string, receiptType: string, threadId: string | null, event: StoredEvent): Promise<void> {
    await this.writer.putReceipt({
      roomId: event.event.roomId,
      userId,
      receiptType,
      threadId,
      eventId: event.event.eventId,
      eventStreamOrdering: event.streamOrdering,
      ts: this.now(),
    });
  }

  private async eventInRoom(roomId: string, eventId: string): Promise<StoredEvent> {
    const event = await this.eventCache.get(eventId);
    if (!event || event.event.roomId !== roomId) throw Errors.notFound(`Could not find event ${eventId} in room ${roomId}`);
    return event;
  }

  /**
   * Whether a receipt for `threadId` may point at the event: `main` takes events outside threads
   * (thread roots included), a thread root's id takes the root and the events of its thread.
   */
  private async inThread(event: StoredEvent, threadId: string): Promise<boolean> {
    const thread = await threadOf(event.event, this.eventCache);
    if (threadId === MAIN_THREAD) return thread === MAIN_THREAD;
    return thread === threadId || event.event.eventId === threadId;
  }
}
