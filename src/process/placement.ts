// Which process writes which stream.
//
// Every stream has its writers (`stream_writers` in the config; `main` when unset). Events,
// receipts and device_lists may have several, each owning the rooms (or users) whose id hashes to
// it, so one room's history is always written by one process, in order. How a writer is reached
// (directly here, or over replication HTTP) is derived from this in `writers.ts`.

import { createHash } from 'node:crypto';
import type { Topology } from '../config/roles.js';
import type { StreamName } from '../streams/streams.js';

export interface WriterPlacement {
  readonly instanceName: string;
  /** The writer instances of a stream, in configured order. */
  writersOf(stream: StreamName): readonly string[];
  /** The instance that writes `stream` for `shardKey` (the room, for events and receipts). */
  writerFor(stream: StreamName, shardKey?: string): string;
  /** Whether this process is one of the stream's writers. */
  writesHere(stream: StreamName): boolean;
}

/** `shardKey`'s writer among `writers`: sha256 of the key, modulo the number of writers. */
export function shardOf(shardKey: string, writers: readonly string[]): string {
  if (writers.length === 1) return writers[0]!;
  const hash = createHash('sha256').update(shardKey).digest();
  return writers[hash.readUInt32BE(0) % writers.length]!;
}

/** The placement a worker deployment's topology describes. */
export function placementFor(topology: Pick<Topology, 'writers' | 'instanceName'>): WriterPlacement {
  const { writers, instanceName } = topology;
  return {
    instanceName,
    writersOf: (stream) => writers[stream],
    writerFor: (stream, shardKey = '') => shardOf(shardKey, writers[stream]),
    writesHere: (stream) => writers[stream].includes(instanceName),
  };
}

/** One process writes everything: the single-process server. */
export function singleProcessPlacement(instanceName = 'main'): WriterPlacement {
  const everything = (): readonly string[] => [instanceName];
  return {
    instanceName,
    writersOf: everything,
    writerFor: () => instanceName,
    writesHere: () => true,
  };
}
