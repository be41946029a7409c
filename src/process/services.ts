// The handler areas of one process, built on its kernel: the events writer, then accounts, the
// per-user and ephemeral streams, end-to-end encryption, reading rooms, and changing rooms (with
// /sync). Each area asks `writers` for the writer of each stream it writes, so it gets this
// process's own or a proxy to the process that writes it.

import type { ApiServices } from '../api/services.js';
import { createAccountServices } from '../handlers/accounts/index.js';
import type { CoreDeps } from '../handlers/core.js';
import { createE2eeServices } from '../handlers/e2ee/index.js';
import { createEphemeralServices } from '../handlers/ephemeral/index.js';
import { EventsWriter } from '../handlers/events-writer.js';
import { createRoomReadServices } from '../handlers/room-reads/index.js';
import { createRoomServices } from '../handlers/rooms/index.js';
import type { RpcServer } from '../replication/rpc.js';
import type { Database } from '../storage/database.js';
import { SequenceIdGenerator, StreamIdGenerator, type MultiWriterStream, type PositionAllocator, type PositionsFor } from '../streams/id-generator.js';
import { componentLogger } from '../util/log.js';
import type { Kernel } from './kernel.js';
import type { WriterPlacement } from './placement.js';
import type { ProcessWriters } from './writers.js';

export interface ProcessServices {
  services: ApiServices;
  /** This process's own events writer, if it writes events (for tests and maintenance). */
  eventsWriter: EventsWriter | undefined;
  close(): Promise<void>;
}

export interface AreaOptions {
  /** The writers of every stream (this process's own, built here, and proxies to the others'). */
  writers: ProcessWriters;
  /** Worker mode: what serves this process's writers to the others (the replication route reads it). */
  rpcServer?: RpcServer;
}

export async function createProcessServices(kernel: Kernel, options: AreaOptions): Promise<ProcessServices> {
  const { config, db, signingKey, log, now, bus, notifier, placement, instanceName, stores, eventCache } = kernel;
  const { writers } = options;
  const positions: PositionsFor = (stream, highestStored) => streamPositions(db, placement, stream, highestStored);

  let localEvents: EventsWriter | undefined;
  const eventsWriter = await writers.writer('events', async () => {
    localEvents = new EventsWriter({
      db,
      events: stores.events,
      roomState: stores.roomState,
      eventCache,
      ids: await positions('events', await stores.events.maxStreamOrdering()),
      bus,
      instanceName,
      serverName: config.server_name,
      signingKey,
      log: componentLogger(log, 'events.writer'),
      now,
    });
    notifier.advance('events', localEvents.currentPosition);
    return localEvents;
  });

  const core: CoreDeps = { ...kernel, eventsWriter, positions };
  const accounts = await createAccountServices(core);
  const ephemeral = await createEphemeralServices(core, writers);
  const e2ee = await createE2eeServices(core, { devices: accounts.devices, writers });
  const reads = await createRoomReadServices(core);
  localEvents?.addSideEffect(ephemeral.pushActions);
  const syncSources = { ...ephemeral.syncSources, ...e2ee.e2eeSyncSources };
  const rooms = await createRoomServices(core, { syncSources, rateLimits: accounts.rateLimits });
  const services: ApiServices = {
    ...core,
    ...accounts,
    ...ephemeral,
    ...e2ee,
    ...reads,
    ...rooms,
    ...(options.rpcServer ? { rpcServer: options.rpcServer } : {}),
  };

  return {
    services,
    eventsWriter: localEvents,
    async close() {
      notifier.close();
      services.closeEphemeral();
      await services.closeE2ee();
    },
  };
}

/**
 * Where this process's events positions come from: with one events writer, a counter from the
 * highest stored position; with several (PostgreSQL), the shared `events_stream_seq` sequence.
 */
/** A stream writer's positions: in memory for the only writer, a PostgreSQL sequence for several. */
async function streamPositions(db: Database, placement: WriterPlacement, stream: MultiWriterStream, highestStored: number): Promise<PositionAllocator> {
  if (placement.writersOf(stream).length === 1) return new StreamIdGenerator(highestStored);
  if (db.dialect !== 'postgres') throw new Error(`several ${stream} writers need PostgreSQL`);
  const sequence = `${stream}_stream_seq`;
  // Never hand out a position at or below one already used (e.g. rows written before the switch).
  const row = await db.get<{ v: number }>(
    `SELECT setval('${sequence}', GREATEST((SELECT last_value FROM ${sequence}), ?)) AS v`,
    [Math.max(1, highestStored)],
  );
  return new SequenceIdGenerator(async () => Number((await db.get<{ v: number }>(`SELECT nextval('${sequence}') AS v`))!.v), Number(row!.v));
}
