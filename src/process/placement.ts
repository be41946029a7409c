// Which process writes which stream, and how to reach a writer in another process.
//
// Every stream has its writers (`stream_writers` in the config; `main` when unset). The events
// stream may have several, each owning the rooms whose id hashes to it, so one room's history is
// always written by one process, in order. A writer in this process is called directly; one
// elsewhere through a proxy that forwards each call over replication HTTP.

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
  /** A proxy for a writer interface served by another instance. */
  remote<T extends object>(instance: string, prefix: string, methods: readonly (keyof T & string)[]): T;
}

/** `shardKey`'s writer among `writers`: sha256 of the key, modulo the number of writers. */
export function shardOf(shardKey: string, writers: readonly string[]): string {
  if (writers.length === 1) return writers[0]!;
  const hash = createHash('sha256').update(shardKey).digest();
  return writers[hash.readUInt32BE(0) % writers.length]!;
}

export function placementFor(
  topology: Pick<Topology, 'writers' | 'instanceName'>,
  remote: <T extends object>(instance: string, prefix: string, methods: readonly (keyof T & string)[]) => T,
): WriterPlacement {
  const { writers, instanceName } = topology;
  return {
    instanceName,
    writersOf: (stream) => writers[stream],
    writerFor: (stream, shardKey = '') => shardOf(shardKey, writers[stream]),
    writesHere: (stream) => writers[stream].includes(instanceName),
    remote,
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
    remote: () => {
      throw new Error('a single process has no remote writers');
    },
  };
}

/**
 * The writer to call for `shardKey`: the local one when this process writes that shard, otherwise
 * a proxy to the instance that does (proxies are made once per instance).
 */
export function writerRouter<T extends object>(
  placement: WriterPlacement,
  stream: StreamName,
  prefix: string,
  methods: readonly (keyof T & string)[],
  local: T | undefined,
): (shardKey?: string) => T {
  const proxies = new Map<string, T>();
  return (shardKey) => {
    const instance = placement.writerFor(stream, shardKey);
    if (instance === placement.instanceName) {
      if (!local) throw new Error(`this process is configured to write ${stream} but has no writer for it`);
      return local;
    }
    let proxy = proxies.get(instance);
    if (!proxy) proxies.set(instance, (proxy = placement.remote<T>(instance, prefix, methods)));
    return proxy;
  };
}
