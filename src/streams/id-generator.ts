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
