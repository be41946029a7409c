// Every store, over one database: built once per process and handed to the handlers, which take
// the stores they use (never the database itself). Each table has exactly one owning store; the
// map is in docs/architecture.md (Storage) and test/architecture/sql-only-in-storage.test.ts
// checks it.

import { AccountDataStore } from './account-data-store.js';
import { CrossSigningStore } from './cross-signing-store.js';
import type { Database, TransactionRunner } from './database.js';
import { DeviceKeysStore } from './device-keys-store.js';
import { DirectoryStore } from './directory-store.js';
import { EventGraphStore } from './event-graph-store.js';
import { EventsStore } from './events-store.js';
import { FederationOutboxStore } from './federation-outbox-store.js';
import { FiltersStore } from './filters-store.js';
import { KeyBackupStore } from './key-backup-store.js';
import { PresenceStore } from './presence-store.js';
import { PushActionsStore } from './push-actions-store.js';
import { PushRulesStore } from './push-rules-store.js';
import { RemoteDeviceListsStore } from './remote-device-lists-store.js';
import { ReceiptsStore } from './receipts-store.js';
import { RoomStateStore } from './room-state-store.js';
import { StateGroupsStore } from './state-groups-store.js';
import { StreamSequencesStore } from './stream-sequences-store.js';
import { ToDeviceStore } from './to-device-store.js';
import { UserDirectoryStore } from './user-directory-store.js';
import { UsersStore } from './users-store.js';

export interface Stores {
  readonly users: UsersStore;
  readonly events: EventsStore;
  readonly roomState: RoomStateStore;
  readonly eventGraph: EventGraphStore;
  readonly stateGroups: StateGroupsStore;
  readonly directory: DirectoryStore;
  readonly userDirectory: UserDirectoryStore;
  readonly accountData: AccountDataStore;
  readonly receipts: ReceiptsStore;
  readonly toDevice: ToDeviceStore;
  /** To-device messages for other servers' users, until their server acknowledges them. */
  readonly federationOutbox: FederationOutboxStore;
  readonly presence: PresenceStore;
  readonly pushRules: PushRulesStore;
  readonly pushActions: PushActionsStore;
  readonly filters: FiltersStore;
  readonly deviceKeys: DeviceKeysStore;
  readonly crossSigning: CrossSigningStore;
  /** Other servers' users' devices, cached while we share a room with them. */
  readonly remoteDeviceLists: RemoteDeviceListsStore;
  readonly keyBackups: KeyBackupStore;
  readonly streamSequences: StreamSequencesStore;
}

export function createStores(db: Database): Stores {
  return {
    users: new UsersStore(db),
    events: new EventsStore(db),
    roomState: new RoomStateStore(db),
    eventGraph: new EventGraphStore(db),
    stateGroups: new StateGroupsStore(db),
    directory: new DirectoryStore(db),
    userDirectory: new UserDirectoryStore(db),
    accountData: new AccountDataStore(db),
    receipts: new ReceiptsStore(db),
    toDevice: new ToDeviceStore(db),
    federationOutbox: new FederationOutboxStore(db),
    presence: new PresenceStore(db),
    pushRules: new PushRulesStore(db),
    pushActions: new PushActionsStore(db),
    filters: new FiltersStore(db),
    deviceKeys: new DeviceKeysStore(db),
    crossSigning: new CrossSigningStore(db),
    remoteDeviceLists: new RemoteDeviceListsStore(db),
    keyBackups: new KeyBackupStore(db),
    streamSequences: new StreamSequencesStore(db),
  };
}

/**
 * The database's transactions and nothing else, for the writers that change several stores in one
 * transaction (the events writer, the stream writers): they hand the transaction to the stores.
 */
export function transactionsOf(db: Database): TransactionRunner {
  return {
    get orderedWrites() {
      return db.orderedWrites;
    },
    transaction: (fn) => db.transaction(fn),
  };
}
