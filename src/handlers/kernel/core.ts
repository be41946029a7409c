// The shared infrastructure every handler area is built on: configuration, storage, the events
// writer, caches, the replication bus and the notifier. Composed once per process (see
// src/process/services.ts, on the kernel of src/process/kernel.ts) and handed to each area's factory, which gives each handler the parts
// it uses (`CoreParts`). Handlers reach the database only through stores, and the writers that
// change several stores at once through `transactions`; never the `Database` itself.

import type { Config } from '../../config/types.js';
import type { SigningKey } from '../../core/signing.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { Stores } from '../../storage/stores.js';
import type { PositionsFor } from '../../streams/id-generator.js';
import type { Notifier } from '../../streams/notifier.js';
import type { Logger } from '../../util/log.js';
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
  /** Transactions across stores, for the writers (handlers never query the database). */
  readonly transactions: TransactionRunner;
  readonly bus: ReplicationBus;
  readonly notifier: Notifier;
  readonly log: Logger;
  readonly now: () => number;
  readonly stores: Stores;
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

/**
 * What a handler takes of the core: the named parts `K` and the named stores `S`, so its
 * constructor says what it depends on (the area's factory still passes the whole core).
 */
export type CoreParts<K extends keyof CoreDeps, S extends keyof Stores = never> = Pick<CoreDeps, K> & { readonly stores: Pick<Stores, S> };
