// Account data and room tags (S:content/client-server-api/modules/account_data.md, tagging.md).
//
// Global and per-room account data share the account_data stream. Tags are the room account data
// `m.tag` (`{tags: {tag: {order?}}}`), and the fully-read marker is the room account data
// `m.fully_read` (`{event_id}`), which only the read-markers API moves, and only forwards.

import { utf8Length, isValidRoomId } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { ReplicationBus } from '../../streams/bus.js';
import { GLOBAL_ROOM, type AccountDataStore } from '../../storage/account-data-store.js';
import type { TransactionRunner } from '../../storage/database.js';
import { StreamIdGenerator } from '../../streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { EventCache } from '../kernel/event-cache.js';
import { jsonEqual } from '../kernel/events-writer.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { Requester } from '../kernel/requester.js';
import { requireSelf } from './checks.js';
import type { PushRulesReader } from './push-rules.js';

export const TAG_TYPE = 'm.tag';
export const FULLY_READ_TYPE = 'm.fully_read';
export const PUSH_RULES_TYPE = 'm.push_rules';
/** The spec's limit on a tag name (§Room tagging), enforced as Synapse does. */
const MAX_TAG_BYTES = 255;

/** The account-data writer, as the API reaches it (in worker mode over RPC). `roomId` null: global. */
export interface AccountDataWriterApi {
  setAccountData(userId: string, roomId: string | null, type: string, content: JsonObject): Promise<void>;
  /** Adds or replaces one tag of `m.tag`. */
  addTag(userId: string, roomId: string, tag: string, content: JsonObject): Promise<void>;
  removeTag(userId: string, roomId: string, tag: string): Promise<void>;
  /** Moves `m.fully_read` to the event if it is ahead of the current marker; false otherwise. */
  advanceFullyRead(userId: string, roomId: string, eventId: string, eventStreamOrdering: number): Promise<boolean>;
}

export class AccountDataWriter implements AccountDataWriterApi {
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly transactions: TransactionRunner,
    private readonly store: AccountDataStore,
    private readonly eventCache: EventCache,
    private readonly publisher: StreamPublisher,
  ) {}

  static async create(deps: {
    transactions: TransactionRunner;
    store: AccountDataStore;
    eventCache: EventCache;
    bus: ReplicationBus;
    instanceName: string;
  }): Promise<AccountDataWriter> {
    const ids = new StreamIdGenerator(await deps.store.maxStreamId());
    return new AccountDataWriter(
      deps.transactions,
      deps.store,
      deps.eventCache,
      new StreamPublisher('account_data', ids, deps.bus, deps.instanceName),
    );
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  setAccountData(userId: string, roomId: string | null, type: string, content: JsonObject): Promise<void> {
    return this.update(userId, roomId ?? GLOBAL_ROOM, type, () => content);
  }

  addTag(userId: string, roomId: string, tag: string, content: JsonObject): Promise<void> {
    return this.update(userId, roomId, TAG_TYPE, (current) => ({ ...current, tags: { ...tagsOf(current), [tag]: content } }));
  }

  removeTag(userId: string, roomId: string, tag: string): Promise<void> {
    return this.update(userId, roomId, TAG_TYPE, (current) => {
      const tags = tagsOf(current);
      if (!(tag in tags)) return undefined;
      const { [tag]: _removed, ...rest } = tags;
      return { ...current, tags: rest };
    });
  }

  async advanceFullyRead(userId: string, roomId: string, eventId: string, eventStreamOrdering: number): Promise<boolean> {
    let moved = false;
    await this.update(userId, roomId, FULLY_READ_TYPE, async (current) => {
      const previous = current?.event_id;
      if (typeof previous === 'string') {
        // A marker on an event we no longer have cannot be compared; the new one wins.
        const old = await this.eventCache.get(previous);
        if (old && old.streamOrdering >= eventStreamOrdering) return undefined;
      }
      moved = true;
      return { event_id: eventId };
    });
    return moved;
  }

  /**
   * Replaces one entry with what `change` makes of its current content, one change per user at a
   * time. `undefined`, or content equal to the current one, writes nothing.
   */
  private update(
    userId: string,
    roomId: string,
    type: string,
    change: (current: JsonObject | undefined) => JsonObject | undefined | Promise<JsonObject | undefined>,
  ): Promise<void> {
    return this.queue.run(userId, async () => {
      const stored = await this.store.get(userId, roomId, type);
      const current = stored === undefined ? undefined : (JSON.parse(stored) as JsonObject);
      const next = await change(current);
      if (next === undefined || (current !== undefined && jsonEqual(current, next))) return;
      await this.publisher.write(1, async ([position]) => {
        await this.transactions.transaction((tx) => this.store.put(tx, userId, roomId, type, JSON.stringify(next), position!));
        const row = { stream: 'account_data' as const, userId, type, ...(roomId === GLOBAL_ROOM ? {} : { roomId }) };
        return { value: undefined, rows: [row] };
      });
    });
  }
}

function tagsOf(content: JsonObject | undefined): JsonObject {
  const tags = content?.tags;
  return isJsonObject(tags) ? tags : {};
}

/** The account-data endpoints: who may do what, then the store (reads) or the writer. */
export class AccountDataHandler {
  constructor(
    private readonly store: AccountDataStore,
    private readonly roomState: RoomStateReader,
    private readonly pushRules: PushRulesReader,
    private readonly writer: AccountDataWriterApi,
  ) {}

  async get(requester: Requester, userId: string, roomId: string | null, type: string): Promise<JsonObject> {
    requireSelf(requester, userId, 'Cannot get account data for other users.');
    if (roomId !== null) requireRoomId(roomId);
    // The push rules are served from their own store, as `GET /pushrules/` (Synapse does the same).
    if (type === PUSH_RULES_TYPE && roomId === null) return (await this.pushRules.ruleSet(userId)) as unknown as JsonObject;
    const stored = await this.store.get(userId, roomId ?? GLOBAL_ROOM, type);
    if (stored === undefined) throw Errors.notFound(roomId === null ? 'Account data not found' : 'Room account data not found');
    return JSON.parse(stored) as JsonObject;
  }

  async put(requester: Requester, userId: string, roomId: string | null, type: string, content: JsonObject): Promise<void> {
    requireSelf(requester, userId, 'Cannot add account data for other users.');
    if (roomId !== null) requireRoomId(roomId);
    if (type === FULLY_READ_TYPE) {
      throw Errors.badJson('Cannot set m.fully_read through this API. Use /rooms/{roomId}/read_markers', 405);
    }
    if (type === PUSH_RULES_TYPE) throw Errors.badJson('Cannot set m.push_rules through this API. Use /pushrules', 405);
    await this.writer.setAccountData(userId, roomId, type, content);
  }

  async tags(requester: Requester, userId: string, roomId: string): Promise<JsonObject> {
    requireSelf(requester, userId, 'Cannot get tags for other users.');
    const stored = await this.store.get(userId, roomId, TAG_TYPE);
    return { tags: tagsOf(stored === undefined ? undefined : (JSON.parse(stored) as JsonObject)) };
  }

  async addTag(requester: Requester, userId: string, roomId: string, tag: string, content: JsonObject): Promise<void> {
    requireSelf(requester, userId, 'Cannot add tags for other users.');
    if (utf8Length(tag) > MAX_TAG_BYTES) throw Errors.invalidParam(`A tag may be at most ${MAX_TAG_BYTES} bytes`);
    if (content.order !== undefined && typeof content.order !== 'number') throw Errors.badJson("'order' must be a number");
    // Tagging a room the user never had anything to do with is refused (Synapse), not stored.
    if ((await this.roomState.membership(roomId, userId)) === undefined)
      throw Errors.forbidden(`${userId} has no membership in room ${roomId}`);
    await this.writer.addTag(userId, roomId, tag, content);
  }

  async removeTag(requester: Requester, userId: string, roomId: string, tag: string): Promise<void> {
    requireSelf(requester, userId, 'Cannot remove tags for other users.');
    await this.writer.removeTag(userId, roomId, tag);
  }
}

function requireRoomId(roomId: string): void {
  if (!isValidRoomId(roomId)) throw Errors.invalidParam(`${roomId} is not a valid room ID`);
}
