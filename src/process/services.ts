// The handler areas of one process, built on its kernel: the events writer, then accounts, the
// per-user and ephemeral streams, end-to-end encryption, reading rooms, and changing rooms (with
// /sync). Each area asks `writers` for the writer of each stream it writes, so it gets this
// process's own or a proxy to the process that writes it.

import type { ApiServices } from '../api/services.js';
import { createAccountServices } from '../handlers/accounts/index.js';
import type { CoreDeps } from '../handlers/kernel/core.js';
import { createE2eeServices } from '../handlers/e2ee/index.js';
import { createEphemeralServices } from '../handlers/ephemeral/index.js';
import { EventsWriter } from '../handlers/kernel/events-writer.js';
import { createRoomReadServices } from '../handlers/room-reads/index.js';
import { createRoomServices } from '../handlers/rooms/index.js';
import type { RpcServer } from '../replication/rpc.js';
import type { StreamSequencesStore } from '../storage/stream-sequences-store.js';
import {
  SequenceIdGenerator,
  StreamIdGenerator,
  type MultiWriterStream,
  type PositionAllocator,
  type PositionsFor,
} from '../streams/id-generator.js';
import { componentLogger, type Logger } from '../util/log.js';
import type { DeviceListsWriterApi } from '../handlers/e2ee/device-lists.js';
import type { ToDeviceWriterApi } from '../handlers/ephemeral/to-device.js';
import { deviceListUpdateHandler, signingKeyUpdateHandler } from '../handlers/federation/device-list-updates.js';
import { directToDeviceHandler } from '../handlers/federation/to-device-intake.js';
import { RateLimiter } from '../handlers/kernel/rate-limit.js';
import { createFederationServices } from '../federation/index.js';
import { createFederationApiServices } from '../handlers/federation/index.js';
import { RemoteQueries } from '../handlers/federation/remote-queries.js';
import { Backfiller } from '../handlers/federation/backfill.js';
import { PduChecker } from '../handlers/federation/fetcher.js';
import { FederationSender, RemoteServerUpNotifier } from '../federation/sender/index.js';
import { isFederationAllowed } from '../federation/settings.js';
import { isValidServerName } from '../core/identifiers.js';
import { topologyOf } from '../config/roles.js';
import { FederationDestinationsStore } from '../storage/federation-destinations-store.js';
import type { Kernel } from './kernel.js';
import type { WriterPlacement } from './placement.js';
import type { ProcessWriters } from './writers.js';

export interface ProcessServices {
  services: ApiServices;
  /** This process's own events writer, if it writes events (for tests and maintenance). */
  eventsWriter: EventsWriter | undefined;
  /** This process's federation sender, if it is one of `federation_sender_instances`. */
  federationSender: FederationSender | undefined;
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
  const positions: PositionsFor = (stream, highestStored) => streamPositions(stores.streamSequences, placement, stream, highestStored);

  let localEvents: EventsWriter | undefined;
  const eventsWriter = await writers.writer('events', async () => {
    localEvents = new EventsWriter({
      transactions: kernel.transactions,
      events: stores.events,
      roomState: stores.roomState,
      directory: stores.directory,
      graph: kernel.roomGraph,
      stateGroupsStore: stores.stateGroups,
      eventCache,
      // An out-of-band membership (an outlier) takes a position in room_state only: never hand it out again.
      ids: await positions('events', Math.max(await stores.events.maxStreamOrdering(), await stores.roomState.maxPosition())),
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
  const ephemeral = await createEphemeralServices(core, writers);
  const e2ee = await createE2eeServices(core, { devices: accounts.devices, writers, federation: federation.client });
  // Aliases, profiles and room lists of other servers, for our clients and for joins by alias.
  const remoteQueries = new RemoteQueries(federation.client, now);
  // History of rooms joined over federation, fetched when /messages runs out of it.
  const backfiller = new Backfiller(
    core,
    federation.client,
    new PduChecker(federation.keyring),
    componentLogger(log, 'federation.backfill'),
  );
  const reads = await createRoomReadServices(core, { remote: remoteQueries, backfiller });
  localEvents?.addSideEffect(ephemeral.pushActions);
  const syncSources = { ...ephemeral.syncSources, ...e2ee.e2eeSyncSources };
  const rooms = await createRoomServices(core, { syncSources, rateLimits: accounts.rateLimits, federation, remoteQueries });
  const federationApi = createFederationApiServices(core, {
    transport: federation,
    ephemeralWriters: ephemeral.ephemeralWriters,
    reads,
  });
  // The events writer of this process fetches what received events lack from their origin.
  localEvents?.useFederation(federationApi.inbound);
  const e2eeEdus = e2eeEduHandlers(
    config.server_name,
    e2ee.deviceListsWriter,
    ephemeral.toDevice,
    componentLogger(log, 'federation.edus'),
    {
      keyRequests: new RateLimiter(federation.settings.keyRequestRateLimit, now),
    },
  );
  for (const type of ['m.device_list_update', 'm.signing_key_update', 'm.direct_to_device'] as const) {
    federationApi.edus.register(type, (_edu, { origin, content }) => e2eeEdus[type](origin, content));
  }
  const services: ApiServices = {
    ...core,
    ...accounts,
    ...ephemeral,
    ...e2ee,
    ...reads,
    ...rooms,
    federation,
    federationApi,
    e2eeEdus,
    ...(options.rpcServer ? { rpcServer: options.rpcServer } : {}),
  };

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

  return {
    services,
    eventsWriter: localEvents,
    federationSender,
    async close() {
      await federationSender?.stop();
      remoteServerUp.close();
      notifier.close();
      services.closeEphemeral();
      await services.closeE2ee();
      await federation.close();
    },
  };
}

/** The handlers of the EDUs of end-to-end encryption, each reaching its stream's writer. */
function e2eeEduHandlers(
  serverName: string,
  deviceLists: DeviceListsWriterApi,
  toDevice: ToDeviceWriterApi,
  log: Logger,
  limits: { keyRequests: RateLimiter },
): ApiServices['e2eeEdus'] {
  return {
    'm.device_list_update': deviceListUpdateHandler({ serverName, writer: deviceLists, log }),
    'm.signing_key_update': signingKeyUpdateHandler({ serverName, writer: deviceLists, log }),
    'm.direct_to_device': directToDeviceHandler({ serverName, writer: toDevice, log, keyRequests: limits.keyRequests }),
  };
}

/**
 * A stream writer's positions: with one writer, a counter from the highest stored position; with
 * several (PostgreSQL), the stream's shared sequence (e.g. `events_stream_seq`).
 */
async function streamPositions(
  sequences: StreamSequencesStore,
  placement: WriterPlacement,
  stream: MultiWriterStream,
  highestStored: number,
): Promise<PositionAllocator> {
  if (placement.writersOf(stream).length === 1) return new StreamIdGenerator(highestStored);
  // Never hand out a position at or below one already used (e.g. rows written before the switch).
  const start = await sequences.raiseTo(stream, Math.max(1, highestStored));
  return new SequenceIdGenerator(() => sequences.next(stream), start);
}
