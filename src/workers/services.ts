// Composes the services of one process: the shared core (storage, caches, the events writer, the
// bus and notifier), then each handler area on top.

import type { ApiServices } from '../api/services.js';
import type { Config } from '../config/load.js';
import type { SigningKey } from '../core/signing.js';
import { createAccountServices } from '../handlers/accounts/index.js';
import { AuthHandler } from '../handlers/auth.js';
import type { CoreDeps } from '../handlers/core.js';
import { createE2eeServices } from '../handlers/e2ee/index.js';
import { createEphemeralServices, EPHEMERAL_WRITER_METHODS } from '../handlers/ephemeral/index.js';
import { TypingWriter } from '../handlers/ephemeral/typing.js';
import { EventCache } from '../handlers/event-cache.js';
import { EventSerializer } from '../handlers/event-serializer.js';
import { EventVisibility } from '../handlers/event-visibility.js';
import { UserMemberships } from '../handlers/memberships.js';
import { EventsWriter, type EventsWriterApi } from '../handlers/events-writer.js';
import { createRoomReadServices } from '../handlers/room-reads/index.js';
import { RoomStateReader } from '../handlers/room-state.js';
import { createRoomServices } from '../handlers/rooms/index.js';
import { InMemoryBus, type ReplicationBus } from '../replication/bus.js';
import type { Database } from '../storage/database.js';
import { EventsStore } from '../storage/events-store.js';
import { RoomStateStore } from '../storage/room-state-store.js';
import { UsersStore } from '../storage/users-store.js';
import { SequenceIdGenerator, StreamIdGenerator, type MultiWriterStream, type PositionAllocator, type PositionsFor } from '../streams/id-generator.js';
import { Notifier } from '../streams/notifier.js';
import type { StreamPositionTracker } from '../streams/positions.js';
import type { JsonValue } from '../core/json.js';
import type { RpcClient, RpcServer } from '../replication/rpc.js';
import { serveWriter } from '../replication/rpc-proxy.js';
import { singleProcessPlacement, type WriterPlacement } from './placement.js';
import { DEVICE_LISTS_WRITER_METHODS, deviceListsPlacement, ephemeralPlacement, EVENTS_WRITER_METHODS, RoutedEventsWriter, writesEphemeral } from './writers.js';
import { componentLogger, type Logger } from '../util/log.js';
import { createFederationServices } from '../federation/index.js';
import { FederationSender, RemoteServerUpNotifier } from '../federation/sender/index.js';
import { isFederationAllowed } from '../federation/settings.js';
import { isValidServerName } from '../core/identifiers.js';
import { topologyOf } from '../config/roles.js';
import { FederationDestinationsStore } from '../storage/federation-destinations-store.js';

export interface ProcessServices {
  services: ApiServices;
  /** This process's own events writer, if it writes events (for tests and maintenance). */
  eventsWriter: EventsWriter | undefined;
  /** This process's federation sender, if it is one of `federation_sender_instances`. */
  federationSender: FederationSender | undefined;
  close(): Promise<void>;
}

export interface ProcessOptions {
  config: Config;
  db: Database;
  signingKey: SigningKey;
  log: Logger;
  now?: () => number;
  /** Where each stream is written; by default everything is written by this single process. */
  placement?: WriterPlacement;
  /**
   * Worker mode: the replication bus (Redis) and RPC. Built by `cluster` from the bus, the
   * stream position tracker (so every writer's position counts) and the positions this process's
   * state starts from. Without it, an in-memory bus and no RPC.
   */
  cluster?: ClusterWiring;
}

export interface ClusterWiring {
  bus: ReplicationBus;
  tracker: StreamPositionTracker;
  rpcClient: RpcClient;
  rpcServer: RpcServer;
}

export async function createProcessServices(options: ProcessOptions): Promise<ProcessServices> {
  const { config, db, signingKey, log, cluster } = options;
  const now = options.now ?? Date.now;
  const placement = options.placement ?? singleProcessPlacement();
  const instanceName = placement.instanceName;
  const bus = cluster?.bus ?? new InMemoryBus();
  const stores = { users: new UsersStore(db), events: new EventsStore(db), roomState: new RoomStateStore(db) };
  const eventCache = new EventCache(stores.events);
  const positions: PositionsFor = (stream, highestStored) => streamPositions(db, placement, stream, highestStored);
  const notifier = new Notifier(bus, { instanceName, ...(cluster ? { tracker: cluster.tracker } : {}) });

  let localEvents: EventsWriter | undefined;
  if (placement.writesHere('events')) {
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
  }
  const eventsWriter: EventsWriterApi =
    placement.writersOf('events').length === 1 && localEvents ? localEvents : new RoutedEventsWriter(placement, localEvents);

  const core: CoreDeps = {
    config,
    serverName: config.server_name,
    instanceName,
    signingKey,
    db,
    bus,
    notifier,
    log,
    now,
    stores,
    eventCache,
    roomState: new RoomStateReader(stores.roomState, eventCache, bus),
    memberships: new UserMemberships(stores.roomState, bus),
    visibility: new EventVisibility(stores.roomState, eventCache),
    serializer: new EventSerializer(stores.events, stores.roomState, eventCache, now, bus),
    auth: new AuthHandler(stores.users, now, bus),
    eventsWriter,
    positions,
  };
  // Before the handler areas: it reads files the config names (CA certificates), and one that
  // cannot be read stops start-up.
  // A server we back off from that contacts us is retried at once, by whichever process sends to it.
  const remoteServerUp = new RemoteServerUpNotifier(new FederationDestinationsStore(db), bus, componentLogger(log, 'federation'), now);
  const federation = createFederationServices({
    config,
    db,
    signingKey,
    log: componentLogger(log, 'federation'),
    now,
    onRemoteServerUp: (origin) => remoteServerUp.notice(origin),
  });
  const accounts = await createAccountServices(core);
  const ephemeral = await createEphemeralServices(core, ephemeralPlacement(placement));
  const e2ee = await createE2eeServices(core, { devices: accounts.devices, placement: deviceListsPlacement(placement) });
  const reads = await createRoomReadServices(core);
  localEvents?.addSideEffect(ephemeral.pushActions);
  const syncSources = { ...ephemeral.syncSources, ...e2ee.e2eeSyncSources };
  const rooms = await createRoomServices(core, { syncSources, rateLimits: accounts.rateLimits });
  const services: ApiServices = { ...core, ...accounts, ...ephemeral, ...e2ee, ...reads, ...rooms, federation };

  // The federation sender runs on `federation_sender_instances` (main when the key is unset).
  const senderInstances = topologyOf(config).federationSenderInstances;
  let federationSender: FederationSender | undefined;
  if (senderInstances.includes(instanceName)) {
    federationSender = new FederationSender({
      serverName: config.server_name,
      instanceName,
      senderInstances,
      db,
      bus,
      client: federation.client,
      allowed: (destination) => isValidServerName(destination) && isFederationAllowed(federation.settings, destination),
      readablePositions: () => notifier.currentPositions(),
      log: componentLogger(log, 'federation.sender'),
      retryPolicy: {
        minIntervalMs: config.federation.destination_min_retry_interval,
        multiplier: config.federation.destination_retry_multiplier,
        maxIntervalMs: config.federation.destination_max_retry_interval,
      },
      receiptsPerRoomPerSecond: config.federation_rr_transactions_per_room_per_second,
      now,
    });
    await federationSender.start();
  }

  if (cluster) {
    // Serve the writers this process runs to the others.
    services.rpcServer = cluster.rpcServer;
    if (localEvents) serveWriter<EventsWriterApi>(cluster.rpcServer, 'events', localEvents, EVENTS_WRITER_METHODS);
    if (placement.writesHere('device_lists')) serveWriter(cluster.rpcServer, 'device_lists', services.deviceListsWriter, DEVICE_LISTS_WRITER_METHODS);
    for (const name of Object.keys(EPHEMERAL_WRITER_METHODS) as Array<keyof typeof EPHEMERAL_WRITER_METHODS>) {
      if (!writesEphemeral(placement, name)) continue;
      serveWriter(cluster.rpcServer, name, services.ephemeralWriters[name], EPHEMERAL_WRITER_METHODS[name] as never);
    }
    const typing = services.ephemeralWriters.typing;
    if (typing instanceof TypingWriter) {
      cluster.rpcServer.register('typing.rowsBetween', async (args) => {
        const [from, to] = args as [number, number];
        return typing.rowsBetween(from, to) as unknown as JsonValue;
      });
    }
  }

  return {
    services,
    eventsWriter: localEvents,
    federationSender,
    async close() {
      await federationSender?.stop();
      notifier.close();
      services.closeEphemeral();
      await services.closeE2ee();
      await federation.close();
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
