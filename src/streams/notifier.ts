// Wakes long-polling /sync requests when a stream they care about advances. It learns about every
// advance from the replication bus, never from direct calls, so a write made by any process wakes
// the syncs of every process the same way.

import type { ReplicationBus, StreamRow, StreamUpdate } from './bus.js';
import { StreamPositionTracker } from './positions.js';
import { STREAM_NAMES, zeroPositions, type StreamName, type StreamPositions } from './streams.js';

export interface WaitRequest {
  userId: string;
  /** Streams whose updates should not wake this request (e.g. presence when the filter drops it). */
  ignore?: ReadonlySet<StreamName>;
  /** Rooms whose events, typing and receipts concern this sync (joined and invited rooms). */
  roomIds: ReadonlySet<string>;
  /** Positions the caller has already seen everything up to. */
  seen: StreamPositions;
  timeoutMs: number;
  signal?: AbortSignal;
}

interface Waiter {
  request: WaitRequest;
  wake: () => void;
}

/** How many recent updates per stream are kept to close the gap between a caller's check and its wait. */
const RECENT_UPDATES = 1024;

export interface NotifierOptions {
  /** This process's instance name (the writer of positions passed to `advance`). */
  instanceName: string;
  /** Where each writer of each stream stands; defaults to one writer, this process. */
  tracker?: StreamPositionTracker;
}

export class Notifier {
  private readonly positions: StreamPositions = zeroPositions();
  private readonly tracker: StreamPositionTracker;
  private readonly instanceName: string;
  private readonly byUser = new Map<string, Set<Waiter>>();
  private readonly byRoom = new Map<string, Set<Waiter>>();
  private readonly bySignal = new WeakMap<AbortSignal, Set<Waiter>>();
  /** Recent updates per stream, in position order, to close the gap between check and wait. */
  private readonly recent = new Map<StreamName, StreamUpdate[]>(STREAM_NAMES.map((name) => [name, []]));
  private readonly droppedUpTo: StreamPositions = zeroPositions();
  /**
   * Updates of a stream with several writers that are ahead of what every writer has completed:
   * readers may not read them yet, so they wake nobody until the stream's position reaches them.
   */
  private readonly held = new Map<StreamName, StreamUpdate[]>();
  /** Checks run after every update, for `waitForWriters`. */
  private readonly positionWaiters = new Set<() => void>();
  private unsubscribe: () => void;

  constructor(bus: ReplicationBus, options: NotifierOptions) {
    this.instanceName = options.instanceName;
    this.tracker = options.tracker ?? new StreamPositionTracker(() => [options.instanceName]);
    for (const stream of STREAM_NAMES) this.positions[stream] = this.tracker.current(stream);
    this.unsubscribe = bus.subscribe((update) => this.onUpdate(update));
  }

  /** The position each stream can be read up to. */
  currentPositions(): StreamPositions {
    return { ...this.positions };
  }

  /** Raises a stream's position as this process's writer reports it (e.g. at start-up). */
  advance(stream: StreamName, position: number, instance = this.instanceName): void {
    this.tracker.observe(stream, instance, position);
    this.positions[stream] = Math.max(this.positions[stream], this.tracker.current(stream));
  }

  /**
   * Resolves when an update relevant to the request arrives past `seen`, when the timeout passes,
   * or when the signal aborts. Updates that arrived after `seen` but before this call (while the
   * caller was checking) wake it at once.
   */
  waitForUpdates(request: WaitRequest): Promise<void> {
    if (request.timeoutMs <= 0 || request.signal?.aborted) return Promise.resolve();
    if (this.missedSince(request)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter: Waiter = { request, wake: () => done() };
      const timer = setTimeout(() => done(), request.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        if (request.signal) this.bySignal.get(request.signal)?.delete(waiter);
        this.remove(this.byUser, request.userId, waiter);
        for (const roomId of request.roomIds) this.remove(this.byRoom, roomId, waiter);
        resolve();
      };
      this.add(this.byUser, request.userId, waiter);
      for (const roomId of request.roomIds) this.add(this.byRoom, roomId, waiter);
      if (request.signal) this.watchSignal(request.signal).add(waiter);
    });
  }

  /**
   * The waiters that end when `signal` aborts. One abort listener per signal (all requests share
   * the shutdown signal), not one per waiter: a thousand listeners on one signal make every
   * removal slow.
   */
  private watchSignal(signal: AbortSignal): Set<Waiter> {
    let waiters = this.bySignal.get(signal);
    if (!waiters) {
      const set = new Set<Waiter>();
      waiters = set;
      this.bySignal.set(signal, set);
      signal.addEventListener(
        'abort',
        () => {
          for (const waiter of [...set]) waiter.wake();
        },
        { once: true },
      );
    }
    return waiters;
  }

  /**
   * Resolves once this process has seen `instance` reach each given position (and its rows are
   * readable here), or after `timeoutMs`. Used after a write made by another process, so the
   * client's next read through this process sees it.
   */
  waitForWriters(instance: string, wanted: ReadonlyArray<{ stream: StreamName; position: number }>, timeoutMs: number): Promise<void> {
    const reached = () =>
      wanted.every(({ stream, position }) => this.tracker.of(stream, instance) >= position && this.positions[stream] >= position);
    if (reached()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (!reached()) return;
        done();
      };
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.positionWaiters.delete(check);
        resolve();
      };
      this.positionWaiters.add(check);
    });
  }

  /**
   * The rows of a stream's updates with `from < position <= to`, from the recent log; undefined
   * when the log no longer reaches back to `from` (the caller then reads the database).
   */
  rowsBetween(stream: StreamName, from: number, to: number): StreamRow[] | undefined {
    if (from < this.droppedUpTo[stream]) return undefined;
    // A held update may carry rows at or below `to` (another writer has not caught up with it).
    if (this.held.get(stream)?.length) return undefined;
    const rows: StreamRow[] = [];
    for (const update of this.recent.get(stream)!) {
      if (update.position > from && update.position <= to) rows.push(...update.rows);
    }
    return rows;
  }

  /** Wakes every waiter (shutdown). */
  wakeAll(): void {
    for (const set of this.byUser.values()) for (const waiter of [...set]) waiter.wake();
  }

  close(): void {
    this.unsubscribe();
    this.wakeAll();
  }

  private onUpdate(update: StreamUpdate): void {
    const { stream } = update;
    this.tracker.observe(stream, update.instance, update.position);
    const current = this.tracker.current(stream);
    if (current > this.positions[stream]) this.positions[stream] = current;
    let held = this.held.get(stream);
    if (update.rows.length > 0) {
      if (!held) this.held.set(stream, (held = []));
      held.push(update);
    }
    if (held?.length) {
      // Release, in position order, what every writer has now completed.
      const ready = held.filter((u) => u.position <= current).sort((a, b) => a.position - b.position);
      if (ready.length > 0) {
        this.held.set(
          stream,
          held.filter((u) => u.position > current),
        );
        for (const released of ready) this.release(released);
      }
    }
    for (const check of [...this.positionWaiters]) check();
  }

  private release(update: StreamUpdate): void {
    const log = this.recent.get(update.stream)!;
    log.push(update);
    if (log.length > RECENT_UPDATES * 2) {
      for (const dropped of log.splice(0, log.length - RECENT_UPDATES)) {
        this.droppedUpTo[dropped.stream] = Math.max(this.droppedUpTo[dropped.stream], dropped.position);
      }
    }
    const woken = new Set<Waiter>();
    for (const row of update.rows) {
      for (const roomId of roomsOf(row)) for (const waiter of this.byRoom.get(roomId) ?? []) woken.add(waiter);
      for (const userId of usersOf(row)) for (const waiter of this.byUser.get(userId) ?? []) woken.add(waiter);
    }
    for (const waiter of woken) if (!waiter.request.ignore?.has(update.stream)) waiter.wake();
  }

  private missedSince(request: WaitRequest): boolean {
    for (const stream of STREAM_NAMES) {
      if (request.ignore?.has(stream)) continue;
      const seen = request.seen[stream];
      if (seen >= this.positions[stream]) continue;
      // Updates dropped from the log may have concerned the caller: wake rather than risk sleeping.
      if (seen < this.droppedUpTo[stream]) return true;
      const log = this.recent.get(stream)!;
      for (let i = log.length - 1; i >= 0 && log[i]!.position > seen; i--) {
        if (log[i]!.rows.some((row) => concerns(row, request))) return true;
      }
    }
    return false;
  }

  private add(map: Map<string, Set<Waiter>>, key: string, waiter: Waiter): void {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(waiter);
  }

  private remove(map: Map<string, Set<Waiter>>, key: string, waiter: Waiter): void {
    const set = map.get(key);
    if (!set) return;
    set.delete(waiter);
    if (set.size === 0) map.delete(key);
  }
}

function roomsOf(row: StreamRow): readonly string[] {
  switch (row.stream) {
    case 'events':
    case 'typing':
    case 'receipts':
      return [row.roomId];
    case 'presence':
    case 'device_lists':
      return row.roomIds;
    default:
      return [];
  }
}

function usersOf(row: StreamRow): readonly string[] {
  switch (row.stream) {
    case 'events':
      // A membership change concerns its target even before they are in the room (invites); so
      // does one made by state resolution (stateDelta).
      return [...(row.stateKey !== undefined && row.type === 'm.room.member' ? [row.stateKey] : []), ...membersIn(row.stateDelta)];
    case 'account_data':
    case 'to_device':
    case 'push_rules':
    case 'presence':
    case 'device_lists':
      return [row.userId];
    default:
      return [];
  }
}

/** The users whose membership a `stateDelta` changed. */
export function membersIn(delta: ReadonlyArray<{ type: string; stateKey: string }> | undefined): string[] {
  return delta ? delta.filter((d) => d.type === 'm.room.member').map((d) => d.stateKey) : [];
}

function concerns(row: StreamRow, request: WaitRequest): boolean {
  return roomsOf(row).some((r) => request.roomIds.has(r)) || usersOf(row).includes(request.userId);
}
