// What every stream writer shares: allocating positions, announcing only completed ones, and
// keeping each key's read-modify-write steps in order.
//
// A writer may have several writes in flight (different users, different rooms), and they can
// commit out of order. Readers must never be told a position is complete while a lower one is
// still being written, or they would skip its row for good. So rows wait here until the stream's
// `current` (everything below it finished) reaches them, and are then published together at that
// position.

import type { ReplicationBus, StreamRow } from './bus.js';
import type { PositionAllocator } from './id-generator.js';
import type { StreamName } from './streams.js';

export class StreamPublisher {
  private waiting: Array<{ position: number; rows: readonly StreamRow[] }> = [];
  private announced: number;
  /** Whether other writers share the stream (then a position move without rows is announced too). */
  private readonly shared: boolean;

  constructor(
    readonly stream: StreamName,
    readonly ids: PositionAllocator,
    private readonly bus: ReplicationBus,
    private readonly instanceName: string,
  ) {
    this.announced = ids.current;
    // With several writers, this one's position also moves when another writer's does (see
    // SequenceIdGenerator.observe); readers hear of it through an update without rows.
    const observe = (ids as { observe?: (position: number) => void }).observe?.bind(ids);
    this.shared = observe !== undefined;
    if (observe) {
      bus.subscribe((update) => {
        if (update.stream === stream && update.instance !== instanceName) observe(update.position);
      });
      ids.onAdvance(() => this.publishCompleted());
    }
  }

  /** The position readers may rely on. */
  get current(): number {
    return this.ids.current;
  }

  async write<T>(
    count: number,
    write: (positions: number[]) => Promise<{ value: T; rows: readonly StreamRow[] }> | { value: T; rows: readonly StreamRow[] },
  ): Promise<T> {
    const reservation = await this.reserve(count);
    let outcome: { value: T; rows: readonly StreamRow[] };
    try {
      outcome = await write(reservation.positions);
    } catch (err) {
      reservation.abandon();
      throw err;
    }
    reservation.complete(outcome.rows);
    return outcome.value;
  }

  /**
   * Allocates `count` positions for a write that completes later (the events writer stages an
   * event before its commit). `complete` publishes the rows once every lower position is done;
   * `abandon` gives the positions up.
   */
  async reserve(count: number): Promise<{ positions: number[]; complete(rows: readonly StreamRow[]): void; abandon(): void }> {
    const allocations: Array<{ position: number; finish: () => void }> = [];
    try {
      for (let i = 0; i < count; i++) allocations.push(await this.ids.allocate());
    } catch (err) {
      // A position drawn but never finished would hold the stream back for good (the next one may
      // come from the database, which can fail).
      for (const allocation of allocations) allocation.finish();
      if (allocations.length > 0) this.publishCompleted();
      throw err;
    }
    const positions = allocations.map((a) => a.position);
    const finish = () => {
      for (const allocation of allocations) allocation.finish();
      this.publishCompleted();
    };
    return {
      positions,
      complete: (rows) => {
        if (rows.length > 0 && positions.length > 0) this.waiting.push({ position: Math.max(...positions), rows });
        finish();
      },
      abandon: finish,
    };
  }

  private publishCompleted(): void {
    const current = this.ids.current;
    if (current <= this.announced) return;
    this.announced = current;
    const ready = this.waiting.filter((w) => w.position <= current);
    this.waiting = this.waiting.filter((w) => w.position > current);
    if (ready.length === 0 && !this.shared) return;
    this.bus.publish({ stream: this.stream, instance: this.instanceName, position: current, rows: ready.flatMap((w) => w.rows) });
  }
}

/**
 * Runs tasks one after another per key (a user, a room), so a read-modify-write of one key never
 * interleaves with another of the same key, while different keys proceed concurrently. The writer
 * of a stream is a single process, so this is all the locking its rows need.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
