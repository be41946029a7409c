// Where each stream stands for readers when a stream has several writers.
//
// Every writer instance of a stream reports its own completed position on the bus. A reader may
// only read a stream up to the lowest position of its writers: below that, every writer has
// finished everything it will ever write (positions come from one sequence, so a writer that
// reports position p will only write above p from then on). That lowest position is what sync
// tokens carry. A writer that has not reported yet counts as 0 until it does, unless the reader
// was started with a position for it.

import type { StreamName } from './streams.js';

export class StreamPositionTracker {
  private readonly byStream = new Map<StreamName, Map<string, number>>();

  /**
   * @param writers the writer instances of each stream (from `stream_writers`; `main` by default)
   * @param initial known starting positions, e.g. read from the database at start-up
   */
  constructor(
    private readonly writers: (stream: StreamName) => readonly string[],
    initial: Partial<Record<StreamName, Record<string, number>>> = {},
  ) {
    for (const [stream, positions] of Object.entries(initial) as Array<[StreamName, Record<string, number>]>) {
      for (const [instance, position] of Object.entries(positions)) this.observe(stream, instance, position);
    }
  }

  /** Records a writer's reported position (positions only move forward). */
  observe(stream: StreamName, instance: string, position: number): void {
    let positions = this.byStream.get(stream);
    if (!positions) this.byStream.set(stream, (positions = new Map<string, number>()));
    if (position > (positions.get(instance) ?? -1)) positions.set(instance, position);
  }

  /** The position every writer of the stream has completed. */
  current(stream: StreamName): number {
    const positions = this.byStream.get(stream);
    let lowest = Infinity;
    for (const writer of this.writers(stream)) lowest = Math.min(lowest, positions?.get(writer) ?? 0);
    return lowest === Infinity ? 0 : lowest;
  }

  /** One writer's reported position. */
  of(stream: StreamName, instance: string): number {
    return this.byStream.get(stream)?.get(instance) ?? 0;
  }

  /** The highest position any writer of the stream has reported. */
  highest(stream: StreamName): number {
    let highest = 0;
    for (const position of this.byStream.get(stream)?.values() ?? []) highest = Math.max(highest, position);
    return highest;
  }

  /** Every reported position, stream → instance → position (carried by replication RPCs). */
  snapshot(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [stream, positions] of this.byStream) out[stream] = Object.fromEntries(positions);
    return out;
  }
}
