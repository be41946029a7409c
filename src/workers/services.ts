// Composes the services of one process: the shared core (storage, caches, the events writer, the
// bus and notifier), then each handler area on top.

import type { ApiServices } from '../api/services.js';
import type { Config } from '../config/load.js';
import type { SigningKey } from '../core/signing.js';
import { createAccountServices } from '../handlers/accounts/index.js';
import { AuthHandler } from '../handlers/auth.js';
import type { CoreDeps } from '../handlers/core.js';
import { createE2eeServices } from '../handlers/e2ee/index.js';
import { createEphemeralServices } from '../handlers/ephemeral/index.js';
import { EventCache } from '../handlers/event-cache.js';
import { EventSerializer } from '../handlers/event-serializer.js';
import { EventVisibility } from '../handlers/event-visibility.js';
import { UserMemberships } from '../handlers/memberships.js';
import { EventsWriter } from '../handlers/events-writer.js';
import { createRoomReadServices } from '../handlers/room-reads/index.js';
import { RoomStateReader } from '../handlers/room-state.js';
import { createRoomServices } from '../handlers/rooms/index.js';
import { InMemoryBus, type ReplicationBus } from '../replication/bus.js';
import type { Database } from '../storage/database.js';
import { EventsStore } from '../storage/events-store.js';
import { RoomStateStore } from '../storage/room-state-store.js';
import { UsersStore } from '../storage/users-store.js';
import { StreamIdGenerator } from '../streams/id-generator.js';
import { Notifier } from '../streams/notifier.js';
import { componentLogger, type Logger } from '../util/log.js';

export interface ProcessServices {
  services: ApiServices;
  eventsWriter: EventsWriter;
  close(): Promise<void>;
}

export async function createProcessServices(options: {
  config: Config;
  db: Database;
  signingKey: SigningKey;
  log: Logger;
  instanceName?: string;
  bus?: ReplicationBus;
  now?: () => number;
}): Promise<ProcessServices> {
  const { config, db, signingKey, log } = options;
  const now = options.now ?? Date.now;
  const instanceName = options.instanceName ?? 'main';
  const bus = options.bus ?? new InMemoryBus();
  const stores = { users: new UsersStore(db), events: new EventsStore(db), roomState: new RoomStateStore(db) };
  const eventCache = new EventCache(stores.events);
  const eventIds = new StreamIdGenerator(await stores.events.maxStreamOrdering());
  const notifier = new Notifier(bus, { instanceName });
  notifier.advance('events', eventIds.current);
  const eventsWriter = new EventsWriter({
    db,
    events: stores.events,
    roomState: stores.roomState,
    eventCache,
    ids: eventIds,
    bus,
    instanceName,
    serverName: config.server_name,
    signingKey,
    log: componentLogger(log, 'events.writer'),
    now,
  });
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
    auth: new AuthHandler(stores.users, now),
    eventsWriter,
  };
  const accounts = await createAccountServices(core);
  const ephemeral = await createEphemeralServices(core);
  const e2ee = await createE2eeServices(core, { devices: accounts.devices });
  const reads = await createRoomReadServices(core);
  eventsWriter.addSideEffect(ephemeral.pushActions);
  const syncSources = { ...ephemeral.syncSources, ...e2ee.e2eeSyncSources };
  const rooms = await createRoomServices(core, { syncSources, rateLimits: accounts.rateLimits });
  const services: ApiServices = { ...core, ...accounts, ...ephemeral, ...e2ee, ...reads, ...rooms };
  return {
    services,
    eventsWriter,
    async close() {
      notifier.close();
      services.closeEphemeral();
      await services.closeE2ee();
    },
  };
}
