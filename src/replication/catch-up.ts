// What the Redis bus needs from the rest of the process to make replication lossless.
//
// Pub/sub is fire-and-forget: a line published while a reader was disconnected is gone. Readers
// notice the gap from POSITION commands and fetch the rows they missed through this interface
// (from the database, or from the writer over replication HTTP for in-memory streams such as
// typing). Writers answer REPLICATE with the positions they report here. The process gives it to
// `RedisBus.start` once it is composed (src/process/cluster.ts builds it).

import type { StreamName } from '../streams/streams.js';
import type { StreamRow } from '../streams/bus.js';

export interface StreamCatchUp {
  /**
   * The streams this process writes, each with its current completed position (every row at or
   * below it has been published on the bus). Empty for a process that writes nothing.
   */
  writtenStreams(): Array<{ stream: StreamName; position: number }>;
  /**
   * The rows `instance` wrote to `stream` at positions `from < position <= to`, in position order.
   * Rejects when they cannot be read now (the bus retries later).
   */
  rowsBetween(stream: StreamName, instance: string, from: number, to: number): Promise<StreamRow[]>;
}

/** Where this process's view of one writer's stream starts: the position its state was loaded at. */
export interface StartingPosition {
  stream: StreamName;
  instance: string;
  position: number;
}
