// The shared infrastructure every handler area is built on: configuration, storage, the events
// writer, caches, the replication bus and the notifier. Composed once per process (see
// src/workers/services.ts) and handed to each area's factory.

import type { Config } from '../config/load.js';
import type { SigningKey } from '../core/signing.js';
import type { ReplicationBus } from '../replication/bus.js';
import type { Database } from '../storage/database.js';
import type { EventGraphStore } from '../storage/event-graph-store.js';
import type { EventsStore } from '../storage/events-store.js';
import type { RoomStateStore } from '../storage/room-state-store.js';
import type { StateGroupsStore } from '../storage/state-groups-store.js';
import type { UsersStore } from '../storage/users-store.js';
import type { PositionsFor } from '../streams/id-generator.js';
import type { Notifier } from '../streams/notifier.js';
import type { Logger } from '../util/log.js';
import type { AuthHandler } from './auth.js';
import type { EventCache } from './event-cache.js';
import type { EventSerializer } from './event-serializer.js';
import type { EventVisibility } from './event-visibility.js';
import type { UserMemberships } from './memberships.js';
import type { EventsWriterApi } from './events-writer.js';
import type { RoomGraph } from './room-graph.js';
import type { RoomStateReader } from './room-state.js';

export interface CoreDeps {
  readonly config: Config;
  readonly serverName: string;
  /** This process's instance name: `main`, or the worker's name. */
  readonly instanceName: string;
  readonly signingKey: SigningKey;
  readonly db: Database;
  readonly bus: ReplicationBus;
  readonly notifier: Notifier;
  readonly log: Logger;
  readonly now: () => number;
  readonly stores: {
    readonly users: UsersStore;
    readonly events: EventsStore;
    readonly roomState: RoomStateStore;
    readonly eventGraph: EventGraphStore;
    readonly stateGroups: StateGroupsStore;
  };
  readonly eventCache: EventCache;
  /** Rooms' event graphs: any event's status and state, state resolution, what federation serves. */
  readonly roomGraph: RoomGraph;
  readonly roomState: RoomStateReader;
  /** Users' current memberships, cached and kept current through the bus. */
  readonly memberships: UserMemberships;
  /** History visibility of room events for a user (every read path filters through it). */
  readonly visibility: EventVisibility;
  /** Stored events → client events, with redactions, transaction ids and prev_content. */
  readonly serializer: EventSerializer;
  readonly auth: AuthHandler;
  /** The events writer for a room (one writer per room; in a single process, always the same). */
  readonly eventsWriter: EventsWriterApi;
  /** Position allocators for the streams that may have several writers. */
  readonly positions: PositionsFor;
}
