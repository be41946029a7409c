// The federation sender: a stream consumer that sends our PDUs and EDUs to the other servers of
// our rooms and never loses any (spec: server-server API §Transactions, §PDUs, §EDUs).
//
// It learns what changed only from the replication bus and reads the rest from the database, so
// it runs the same in the single process and on a worker (`federation_sender_instances`, each
// instance sending to the destinations the hash gives it: sharding.ts):
// - events: the bus says the events stream moved; the events reader (events-reader.ts) reads our
//   new events in order and hands each to the queues of its destinations (destination-queue.ts);
// - typing (each row is a room's typers: what changed is told as `m.typing`), presence (to the
//   servers sharing a room with the user), receipts, device lists and to-device messages wake the
//   queues of the servers concerned, which read what to send themselves;
// - `REMOTE_SERVER_UP` (a destination contacted us) ends that destination's wait at once.
//
// What must survive is in the database (schema 0052): each destination's acknowledged positions
// and retry state, how far this instance has read the events stream, the to-device outbox. A
// restarted sender reads on from there and catches every destination up.

import { serverNameOf } from '../../core/identifiers.js';
import type { OutboundPresence } from '../../core/outbound-edus.js';
import type { BusCommand, ReplicationBus, StreamRow, StreamUpdate } from '../../streams/bus.js';
import type { Database } from '../../storage/database.js';
import {
  FederationDestinationsStore,
  type AcknowledgedPositions,
  type DestinationRow,
} from '../../storage/federation-destinations-store.js';
import { FederationOutboxStore } from '../../storage/federation-outbox-store.js';
import { FederationSenderReads, type PresenceStateRow } from '../../storage/federation-sender-reads.js';
import type { StreamPositions } from '../../streams/streams.js';
import type { Logger } from '../../util/log.js';
import type { FederationClient } from '../client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './backoff.js';
import { DestinationQueue, Semaphore, type DestinationStatus, type QueueEnvironment, type TransactionReport } from './destination-queue.js';
import { EventsDistributor, type DistributedEvent } from './events-reader.js';
import { CurrentRoomHosts } from './room-hosts.js';
import { FederationShard, senderTag } from './sharding.js';

export interface FederationSenderOptions {
  readonly serverName: string;
  /** This process's instance name. */
  readonly instanceName: string;
  /** `federation_sender_instances` (main when the key is unset): who sends to which destination. */
  readonly senderInstances: readonly string[];
  readonly db: Database;
  readonly bus: ReplicationBus;
  readonly client: Pick<FederationClient, 'request'>;
  /** Whether we federate with a server (`federation_domain_whitelist`). */
  readonly allowed: (destination: string) => boolean;
  /** Where each stream can be read up to (every writer has completed it). */
  readonly readablePositions: () => StreamPositions;
  readonly log: Logger;
  readonly retryPolicy?: RetryPolicy;
  /** `federation_rr_transactions_per_room_per_second`: how often a room's receipts go out. */
  readonly receiptsPerRoomPerSecond?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  /** A transaction's whole request (default 60 s). */
  readonly requestTimeoutMs?: number;
  /** A catch-up gap beyond this many events sends the latest event per room (default 10,000). */
  readonly largeCatchUpGap?: number;
  /** Destinations building or sending a transaction at once (default 64). */
  readonly concurrency?: number;
  /** Told of each transaction's outcome (tests, metrics). */
  readonly onTransaction?: (report: TransactionReport) => void;
}

const EVENTS_STREAM = 'events';
/** How often the events reader's position is written down (and at stop). */
const POSITION_PERSIST_INTERVAL_MS = 1_000;
const READ_RETRY_MS = 5_000;
/**
 * How often the to-device outbox is looked at for destinations with messages waiting: a bus row
 * lost while Redis was down (the outbox is not among the streams the bus catches up) is found here.
 */
const OUTBOX_SWEEP_INTERVAL_MS = 60_000;
/** What a user's presence reads as "currently active" (as presence.ts serves it). */
const CURRENTLY_ACTIVE_MS = 120_000;

/**
 * Where an instance's events reader starts: where the furthest sender instance (this one, another,
 * or a former one) stopped. Every instance writes the rows of all the destinations of what it
 * reads (not only its own) before its position moves, so everything below that position has its
 * destinations' rows, from which their owners catch them up; what is above it, nobody has read
 * yet. The first time a sender ever runs, the current position: nothing before it was federated.
 */
export function startingPosition(positions: ReadonlyMap<string, number>, current: number): number {
  return positions.size > 0 ? Math.max(...positions.values()) : current;
}

export class FederationSender {
  private readonly store: FederationDestinationsStore;
  private readonly outbox: FederationOutboxStore;
  private readonly reads: FederationSenderReads;
  private readonly shard: FederationShard;
  private readonly hosts: CurrentRoomHosts;
  private readonly queues = new Map<string, DestinationQueue>();
  private readonly creating = new Map<string, Promise<DestinationQueue>>();
  /** Every destination with a row (any instance's). */
  private readonly known = new Set<string>();
  private readonly typers = new Map<string, readonly string[]>();
  private readonly receiptWakes = new Map<string, { last: number; timer?: NodeJS.Timeout }>();
  private readonly env: QueueEnvironment;
  private readonly now: () => number;
  private distributor: EventsDistributor | undefined;
  private lastReadable: StreamPositions | undefined;
  private eduChain: Promise<void> = Promise.resolve();
  private unsubscribe: Array<() => void> = [];
  private persistedPosition = 0;
  private lastPersistTs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: FederationSenderOptions) {
    const { db, serverName } = options;
    this.now = options.now ?? Date.now;
    this.store = new FederationDestinationsStore(db);
    this.outbox = new FederationOutboxStore(db);
    this.reads = new FederationSenderReads(db, serverName);
    this.shard = new FederationShard(options.instanceName, options.senderInstances);
    this.hosts = new CurrentRoomHosts(this.reads, serverName, this.now);
    const startedTag = `${this.now().toString(36)}${senderTag(options.instanceName)}`;
    let txnCounter = 0;
    this.env = {
      origin: serverName,
      db,
      client: options.client,
      store: this.store,
      outbox: this.outbox,
      reads: this.reads,
      shared: { hostsOf: (roomId) => this.hosts.hostsOf(roomId), roomsOf: (userId) => this.reads.joinedRoomsOf(userId) },
      distributedUpTo: () => this.distributor?.distributedUpTo ?? 0,
      readable: () => options.readablePositions(),
      policy: options.retryPolicy ?? DEFAULT_RETRY_POLICY,
      nextTxnId: () => `${startedTag}.${++txnCounter}`,
      slots: new Semaphore(options.concurrency ?? 64),
      log: options.log,
      now: this.now,
      random: options.random ?? Math.random,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      largeGap: options.largeCatchUpGap ?? 10_000,
      ...(options.onTransaction ? { onTransaction: options.onTransaction } : {}),
    };
  }

  /** Whether this instance sends to `destination`. */
  owns(destination: string): boolean {
    return this.shard.owns(destination);
  }

  /**
   * Loads the destinations, starts catching up the ones that are behind, and follows the bus. The
   * events reader starts where the sender instances left off (`startingPosition`).
   */
  async start(): Promise<void> {
    const { log, instanceName, bus } = this.options;
    const readable = this.options.readablePositions();
    this.lastReadable = readable;
    const rows = await this.store.all();
    const startAt = startingPosition(await this.store.senderPositions(EVENTS_STREAM), readable.events);
    this.persistedPosition = startAt;
    this.distributor = new EventsDistributor(
      {
        reads: this.reads,
        serverName: this.options.serverName,
        allowed: (d) => this.options.allowed(d),
        prepare: (batch) => this.prepareEvents(batch),
        deliver: (batch) => this.deliverEvents(batch),
        log,
      },
      startAt,
    );
    for (const row of rows) {
      this.known.add(row.destination);
      // A destination no longer allowed (`federation_domain_whitelist` changed) is left alone.
      if (this.shard.owns(row.destination) && this.options.allowed(row.destination))
        this.queues.set(row.destination, new DestinationQueue(this.env, row));
    }
    // To-device messages may wait for a destination we never sent an event to.
    await this.sweepOutbox(readable);
    this.sweepTimer = setInterval(() => void this.sweepOutbox().catch(() => undefined), OUTBOX_SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.unsubscribe.push(bus.subscribe((update) => this.onUpdate(update)));
    this.unsubscribe.push(bus.onCommand((command) => this.onCommand(command)));
    const behind = [...this.queues.values()].filter((q) => q.status().lastAckedEvents < readable.events).length;
    log.info(
      { instance: instanceName, destinations: this.queues.size, behind, readFrom: startAt, instances: this.options.senderInstances },
      `federation sender started: ${this.queues.size} destinations (${behind} to catch up), reading events from position ${startAt}`,
    );
    for (const queue of this.queues.values()) queue.wake();
    this.pumpEvents();
  }

  /** Stops sending (transactions in flight are given up to 2 s) and records the reader's position. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.persistTimer) clearTimeout(this.persistTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const wake of this.receiptWakes.values()) if (wake.timer) clearTimeout(wake.timer);
    this.distributor?.stop();
    const idle = Promise.all([...this.queues.values()].map((q) => q.stop()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    await this.persistReaderPosition(true);
  }

  /** A destination contacted us (it is up): retry it now. Also heard as `REMOTE_SERVER_UP`. */
  remoteServerUp(server: string): void {
    this.queues.get(server)?.remoteServerUp();
  }

  status(destination: string): DestinationStatus | undefined {
    return this.queues.get(destination)?.status();
  }

  destinations(): DestinationStatus[] {
    return [...this.queues.values()].map((q) => q.status());
  }

  /** How far the events reader has handed events out. */
  get eventsPosition(): number {
    return this.distributor?.distributedUpTo ?? 0;
  }

  // ---- the bus ----

  private onCommand(command: BusCommand): void {
    if (command.name === 'REMOTE_SERVER_UP') this.remoteServerUp(command.server);
  }

  private onUpdate(update: StreamUpdate): void {
    if (this.stopped) return;
    // The positions before this update: a destination met through it starts there.
    const before = this.lastReadable ?? this.options.readablePositions();
    this.lastReadable = this.options.readablePositions();
    switch (update.stream) {
      case 'events':
        for (const row of update.rows) {
          if (row.stream === 'events' && (row.stateKey !== undefined || !this.isOurs(row.sender))) this.hosts.invalidate(row.roomId);
        }
        this.pumpEvents();
        return;
      case 'typing':
        return this.onTyping(update.rows, before);
      case 'receipts':
        for (const row of update.rows) if (row.stream === 'receipts' && this.isOurs(row.userId)) this.receiptChanged(row.roomId, before);
        return;
      case 'presence':
        return this.onPresence(update.rows, before);
      case 'device_lists':
        for (const row of update.rows) {
          if (row.stream !== 'device_lists' || !this.isOurs(row.userId) || row.roomIds.length === 0) continue;
          const roomIds = row.roomIds;
          this.chain(async () => {
            for (const host of await this.hostsOfRooms(roomIds))
              (await this.queueFor(host, this.positionsNow(before)))?.deviceListsChanged();
          });
        }
        return;
      case 'to_device':
        for (const row of update.rows) {
          if (row.stream !== 'to_device' || this.isOurs(row.userId)) continue;
          const destination = serverNameOf(row.userId);
          if (destination === undefined || !this.shard.owns(destination)) continue;
          this.chain(async () => (await this.queueFor(destination, this.positionsNow(before)))?.toDeviceWaitingNow());
        }
        return;
      default:
        return;
    }
  }

  private isOurs(userId: string): boolean {
    return serverNameOf(userId) === this.options.serverName;
  }

  /** Runs EDU work one piece after another, in the order the bus delivered it. */
  private chain(work: () => Promise<void>): void {
    this.eduChain = this.eduChain.then(work).catch((err: unknown) => {
      if (!this.stopped)
        this.options.log.warn({ err: (err as Error).message }, 'federation sender: could not hand an EDU to its destinations');
    });
  }

  private async hostsOfRooms(roomIds: readonly string[]): Promise<Set<string>> {
    const hosts = new Set<string>();
    for (const roomId of roomIds)
      for (const host of await this.hosts.hostsOf(roomId)) if (this.shard.owns(host) && this.options.allowed(host)) hosts.add(host);
    return hosts;
  }

  private onTyping(rows: readonly StreamRow[], before: StreamPositions): void {
    for (const row of rows) {
      if (row.stream !== 'typing') continue;
      // Each row is the room's typers now: the change is who started and who stopped.
      const previous = this.typers.get(row.roomId) ?? [];
      const current = row.userIds;
      if (current.length > 0) this.typers.set(row.roomId, current);
      else this.typers.delete(row.roomId);
      const changes = [
        ...current.filter((u) => !previous.includes(u)).map((userId) => ({ userId, typing: true })),
        ...previous.filter((u) => !current.includes(u)).map((userId) => ({ userId, typing: false })),
      ].filter((c) => this.isOurs(c.userId));
      if (changes.length === 0) continue;
      const roomId = row.roomId;
      this.chain(async () => {
        for (const host of await this.hostsOfRooms([roomId])) {
          const queue = await this.queueFor(host, this.positionsNow(before));
          for (const change of changes) queue?.addTyping(roomId, change.userId, change.typing);
        }
      });
    }
  }

  private onPresence(rows: readonly StreamRow[], before: StreamPositions): void {
    for (const row of rows) {
      if (row.stream !== 'presence' || !this.isOurs(row.userId) || row.roomIds.length === 0) continue;
      const { userId, roomIds } = row;
      this.chain(async () => {
        const [state] = await this.reads.presenceOf([userId]);
        if (!state) return;
        const update = this.presenceUpdate(state);
        for (const host of await this.hostsOfRooms(roomIds)) (await this.queueFor(host, this.positionsNow(before)))?.addPresence(update);
      });
    }
  }

  private presenceUpdate(row: PresenceStateRow): OutboundPresence {
    const now = this.now();
    const lastActive = Number(row.last_active_ts);
    const presence = row.state === 'online' || row.state === 'unavailable' ? row.state : 'offline';
    return {
      userId: row.user_id,
      presence,
      lastActiveAgo: lastActive > 0 ? Math.max(0, now - lastActive) : undefined,
      currentlyActive: presence === 'online' ? now - lastActive <= CURRENTLY_ACTIVE_MS : undefined,
      statusMsg: row.status_msg ?? undefined,
    };
  }

  /**
   * A room's receipts changed: its servers are told at most
   * `federation_rr_transactions_per_room_per_second` times a second (later changes wait).
   */
  private receiptChanged(roomId: string, before: StreamPositions): void {
    const rate = this.options.receiptsPerRoomPerSecond ?? 50;
    const interval = rate > 0 ? 1_000 / rate : 0;
    const wake = () => {
      const entry = this.receiptWakes.get(roomId) ?? { last: 0 };
      entry.last = this.now();
      entry.timer = undefined;
      this.receiptWakes.set(roomId, entry);
      this.chain(async () => {
        for (const host of await this.hostsOfRooms([roomId])) (await this.queueFor(host, this.positionsNow(before)))?.receiptsChanged();
      });
    };
    const entry = this.receiptWakes.get(roomId);
    if (!entry || this.now() - entry.last >= interval) {
      if (this.receiptWakes.size > 10_000) this.receiptWakes.clear();
      return wake();
    }
    if (entry.timer) return;
    entry.timer = setTimeout(wake, Math.max(0, entry.last + interval - this.now()));
    entry.timer.unref();
  }

  // ---- destinations ----

  /** Wakes the destinations with to-device messages waiting; drops those we may not send to. */
  private async sweepOutbox(readable = this.lastReadable ?? this.options.readablePositions()): Promise<void> {
    for (const destination of await this.outbox.destinations()) {
      if (this.stopped || !this.shard.owns(destination)) continue;
      if (!this.options.allowed(destination)) {
        this.options.log.warn({ destination }, `to-device messages for ${destination} dropped: federation with it is not allowed`);
        await this.options.db.transaction((tx) => this.outbox.deleteUpTo(tx, destination, Number.MAX_SAFE_INTEGER));
        continue;
      }
      (await this.queueFor(destination, this.positionsNow(readable)))?.toDeviceWaitingNow();
    }
  }

  /** Positions for a destination met now (through an EDU): nothing before them is owed to it. */
  private positionsNow(before: StreamPositions): AcknowledgedPositions {
    return { lastAckedEvents: this.eventsPosition, receiptsPosition: before.receipts, deviceListsPosition: before.device_lists };
  }

  /** The queue of a destination this instance sends to (made, with its row, when first met). */
  private async queueFor(destination: string, initial: AcknowledgedPositions): Promise<DestinationQueue | undefined> {
    if (this.stopped || !this.shard.owns(destination) || !this.options.allowed(destination)) return undefined;
    const existing = this.queues.get(destination);
    if (existing) return existing;
    let creating = this.creating.get(destination);
    if (!creating) {
      creating = (async () => {
        await this.store.ensure([{ destination, ...initial }]);
        this.known.add(destination);
        const row = await this.store.get(destination);
        if (!row) throw new Error(`the row of ${destination} vanished`);
        const queue = this.queues.get(destination) ?? new DestinationQueue(this.env, row);
        this.queues.set(destination, queue);
        return queue;
      })().finally(() => this.creating.delete(destination));
      this.creating.set(destination, creating);
    }
    return creating;
  }

  // ---- events ----

  private pumpEvents(): void {
    if (this.stopped || !this.distributor) return;
    const readable = this.options.readablePositions().events;
    this.distributor.advanceTo(readable).then(
      () => this.persistReaderPosition(false),
      (err: unknown) => {
        if (this.stopped) return;
        this.options.log.warn(
          { err: (err as Error).message },
          `federation sender: could not read new events; trying again in ${READ_RETRY_MS / 1000} s`,
        );
        if (!this.retryTimer) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.pumpEvents();
          }, READ_RETRY_MS);
          this.retryTimer.unref();
        }
      },
    );
  }

  /**
   * Before a batch is handed out: the rows of destinations met for the first time (every
   * instance writes them, for every destination, before its read position moves past the event:
   * so whichever instance owns the destination finds what it is owed), and their queues.
   */
  private async prepareEvents(batch: readonly DistributedEvent[]): Promise<void> {
    const readable = this.lastReadable ?? this.options.readablePositions();
    const fresh = new Map<string, AcknowledgedPositions>();
    for (const event of batch) {
      for (const destination of event.destinations) {
        if (this.known.has(destination) || fresh.has(destination)) continue;
        fresh.set(destination, {
          lastAckedEvents: event.position - 1,
          receiptsPosition: readable.receipts,
          deviceListsPosition: readable.device_lists,
        });
      }
    }
    if (fresh.size === 0) return;
    const inserted = await this.store.ensure([...fresh].map(([destination, positions]) => ({ destination, ...positions })));
    for (const [destination, positions] of fresh) {
      this.known.add(destination);
      if (!this.shard.owns(destination) || this.queues.has(destination)) continue;
      let row: DestinationRow | undefined;
      if (inserted.has(destination)) {
        row = { destination, ...positions, failureTs: undefined, retryLastTs: 0, retryIntervalMs: 0, lastSuccessTs: undefined };
      } else {
        row = await this.store.get(destination);
      }
      if (!row || this.queues.has(destination)) continue;
      // A destination met in this batch gets every later event from the reader: it starts live.
      this.queues.set(destination, new DestinationQueue(this.env, row, inserted.has(destination)));
    }
  }

  private deliverEvents(batch: readonly DistributedEvent[]): void {
    for (const event of batch) {
      for (const destination of event.destinations) {
        if (this.shard.owns(destination)) this.queues.get(destination)?.addPdu(event);
      }
    }
  }

  private async persistReaderPosition(force: boolean): Promise<void> {
    const position = this.distributor?.distributedUpTo;
    if (position === undefined || position <= this.persistedPosition) return;
    if (!force && this.now() - this.lastPersistTs < POSITION_PERSIST_INTERVAL_MS) {
      // Written with a later batch, or by the timer below when the stream goes quiet.
      if (!this.persistTimer && !this.stopped) {
        this.persistTimer = setTimeout(() => {
          this.persistTimer = undefined;
          void this.persistReaderPosition(false);
        }, POSITION_PERSIST_INTERVAL_MS);
        this.persistTimer.unref();
      }
      return;
    }
    this.lastPersistTs = this.now();
    try {
      await this.store.setSenderPosition(this.options.instanceName, EVENTS_STREAM, position);
      this.persistedPosition = Math.max(this.persistedPosition, position);
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'federation sender: could not record how far it has read the events stream');
    }
  }
}
