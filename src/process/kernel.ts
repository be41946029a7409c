// The kernel of a process: what every part of it is built on — configuration, the database and the
// stores every area shares, the replication bus with the notifier and the caches that follow it,
// and where each stream is written. Built first, once, and the same in a single process and in
// every process of a worker deployment; only the bus, the placement and the position tracker
// differ (in memory and one writer per stream, or Redis and `stream_writers`).

import type { Config } from '../config/types.js';
import type { CoreDeps } from '../handlers/kernel/core.js';
import type { SigningKey } from '../core/signing.js';
import { AuthHandler } from '../handlers/kernel/auth.js';
import { EventCache } from '../handlers/kernel/event-cache.js';
import { EventSerializer } from '../handlers/kernel/event-serializer.js';
import { EventVisibility } from '../handlers/kernel/event-visibility.js';
import { UserMemberships } from '../handlers/kernel/memberships.js';
import { RoomGraph } from '../handlers/kernel/room-graph.js';
import { RoomStateReader } from '../handlers/kernel/room-state.js';
import { StateGroups } from '../handlers/kernel/state-groups.js';
import type { Database } from '../storage/database.js';
import { createStores, transactionsOf } from '../storage/stores.js';
import type { ReplicationBus } from '../streams/bus.js';
import { Notifier } from '../streams/notifier.js';
import type { StreamPositionTracker } from '../streams/positions.js';
import type { Logger } from '../util/log.js';
import type { WriterPlacement } from './placement.js';

export interface KernelOptions {
  config: Config;
  db: Database;
  signingKey: SigningKey;
  log: Logger;
  now?: () => number;
  /** Where each stream is written. */
  placement: WriterPlacement;
  /** The bus: in memory in a single process, Redis in a worker deployment (started last). */
  bus: ReplicationBus;
  /** Where each writer of each stream stands; by default one writer per stream, this process. */
  tracker?: StreamPositionTracker;
}

/**
 * The kernel: the handlers' core (`CoreDeps`) but for what the areas build on top of it (the
 * events writer, position allocators), plus what only the composition uses.
 */
export interface Kernel extends Omit<CoreDeps, 'eventsWriter' | 'positions'> {
  /** The database, for process-level parts only (handlers get `stores` and `transactions`). */
  readonly db: Database;
  readonly placement: WriterPlacement;
}

export function createKernel(options: KernelOptions): Kernel {
  const { config, db, signingKey, log, placement, bus } = options;
  const now = options.now ?? Date.now;
  const instanceName = placement.instanceName;
  const stores = createStores(db);
  const eventCache = new EventCache(stores.events, stores.eventGraph);
  const roomGraph = new RoomGraph(stores.eventGraph, new StateGroups(stores.stateGroups, db, stores.roomState));
  // The notifier hears every update first: the caches below follow the same bus, synchronously,
  // before any sync it wakes runs again.
  const notifier = new Notifier(bus, { instanceName, ...(options.tracker ? { tracker: options.tracker } : {}) });
  const roomState = new RoomStateReader(stores.roomState, eventCache, bus);
  return {
    config,
    serverName: config.server_name,
    instanceName,
    signingKey,
    db,
    transactions: transactionsOf(db),
    log,
    now,
    placement,
    bus,
    notifier,
    stores,
    eventCache,
    roomGraph,
    roomState,
    memberships: new UserMemberships(stores.roomState, bus),
    visibility: new EventVisibility(roomState, eventCache),
    serializer: new EventSerializer(stores.events, roomState, eventCache, now, bus),
    auth: new AuthHandler(stores.users, now, bus),
  };
}
