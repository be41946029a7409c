// Allocates stream positions and tracks how far a stream is complete.
//
// Writers may persist rows concurrently (different rooms, different users), so positions can
// commit out of order. A reader must never be told a position is done while a lower one is still
// being written, or it would skip that row for good. `current` is therefore the highest position
// below which every allocated position has finished (committed or abandoned).

export class StreamIdGenerator {
  private next: number;
  private completedUpTo: number;
  private readonly pending = new Set<number>();
  private readonly finishedAhead = new Set<number>();
  private readonly listeners = new Set<(position: number) => void>();

  constructor(start: number) {
    this.next = start + 1;
    this.completedUpTo = start;
  }

  /** The position every reader may rely on. */
  get current(): number {
    return this.completedUpTo;
  }

  /** Reserves the next position. Call `finish` on the returned handle once the row is durable
   * (or the write failed). */
  allocate(): { position: number; finish: () => void } {
    const position = this.next++;
    this.pending.add(position);
    let finished = false;
    return {
      position,
      finish: () => {
        if (finished) return;
        finished = true;
        this.complete(position);
      },
    };
  }

  /** Called with the new `current` whenever it advances. */
  onAdvance(listener: (position: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private complete(position: number): void {
    this.pending.delete(position);
    this.finishedAhead.add(position);
    const before = this.completedUpTo;
    while (this.finishedAhead.has(this.completedUpTo + 1)) {
      this.completedUpTo += 1;
      this.finishedAhead.delete(this.completedUpTo);
    }
    if (this.completedUpTo !== before) for (const listener of this.listeners) listener(this.completedUpTo);
  }
}

/** The streams that may have several writers (`stream_writers` lists more than one instance). */
export type MultiWriterStream = 'events' | 'receipts' | 'device_lists';

/**
 * Builds a writer's position allocator for a stream whose highest stored position is
 * `highestStored`: counting in memory when the stream has one writer, from a shared database
 * sequence when it has several.
 */
export type PositionsFor = (stream: MultiWriterStream, highestStored: number) => Promise<PositionAllocator>;

/** What a stream writer allocates positions from. */
export interface PositionAllocator {
  /** The position every reader may rely on for this writer's rows. */
  readonly current: number;
  allocate(): { position: number; finish: () => void } | Promise<{ position: number; finish: () => void }>;
  /** Called with the new `current` whenever it advances. */
  onAdvance(listener: (position: number) => void): () => void;
}

/**
 * Positions for a stream with several writers (worker mode, PostgreSQL): each comes from a shared
 * database sequence, so they are unique and increase across writers. This writer's `current`
 * covers only its own rows: below it, it has finished everything it allocated, and it will never
 * write at or below it again. When it has nothing in flight that is everything up to the highest
 * position it has seen anywhere (`observe`), since its next position from the sequence will be
 * higher still — which lets readers move on while this writer is idle.
 */
export class SequenceIdGenerator implements PositionAllocator {
  private readonly pending = new Set<number>();
  private highest: number;
  private reported: number;
  private readonly listeners = new Set<(position: number) => void>();

  constructor(
    /** Returns the next value of the shared sequence. */
    private readonly nextValue: () => Promise<number>,
    /** The sequence's value at start-up: this writer has nothing at or below it in flight. */
    start: number,
  ) {
    this.highest = start;
    this.reported = start;
  }

  get current(): number {
    if (this.pending.size === 0) return this.highest;
    let lowest = Infinity;
    for (const position of this.pending) lowest = Math.min(lowest, position);
    return Math.max(this.reported, lowest - 1);
  }

  async allocate(): Promise<{ position: number; finish: () => void }> {
    // Reserve the gap before awaiting: until the value arrives, nothing above `highest` is safe.
    const placeholder = this.highest + 1;
    this.pending.add(placeholder);
    let position: number;
    try {
      position = await this.nextValue();
    } finally {
      this.pending.delete(placeholder);
    }
    this.pending.add(position);
    this.highest = Math.max(this.highest, position);
    let finished = false;
    return {
      position,
      finish: () => {
        if (finished) return;
        finished = true;
        this.pending.delete(position);
        this.changed();
      },
    };
  }

  /** Another writer of the stream reported `position` (values up to it are handed out). */
  observe(position: number): void {
    if (position <= this.highest) return;
    this.highest = position;
    this.changed();
  }

  onAdvance(listener: (position: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    const current = this.current;
    if (current <= this.reported) return;
    this.reported = current;
    for (const listener of this.listeners) listener(current);
  }
}
