// Per-user and ephemeral streams: typing, receipts and read markers, presence, account data and
// tags, to-device messages, push rules (and the notifications they produce), filters.
//
// Each stream has one writer (the only code that allocates its positions, writes its rows and
// publishes them on the bus) behind an interface with plain-JSON arguments, so worker mode can put
// an RPC in between; everything else only reads. In a single process this composes the writers
// themselves; `ephemeralWriters` exposes them for the replication endpoint that will serve them to workers.

import type { CoreDeps } from '../core.js';
import type { EventSideEffects } from '../events-writer.js';
import { AccountDataStore } from '../../storage/account-data-store.js';
import { FiltersStore } from '../../storage/filters-store.js';
import { PresenceStore } from '../../storage/presence-store.js';
import { PushActionsStore } from '../../storage/push-actions-store.js';
import { PushRulesStore } from '../../storage/push-rules-store.js';
import { ReceiptsStore } from '../../storage/receipts-store.js';
import { ToDeviceStore } from '../../storage/to-device-store.js';
import { componentLogger } from '../../util/log.js';
import { AccountDataHandler, AccountDataWriter, type AccountDataWriterApi } from './account-data.js';
import { FiltersHandler } from './filters.js';
import { PresenceHandler, PresenceReader, PresenceWriter, type PresenceWriterApi } from './presence.js';
import { PushActions } from './push-actions.js';
import { PushRulesHandler, PushRulesReader, PushRulesWriter, type PushRulesWriterApi } from './push-rules.js';
import { ReceiptsHandler, ReceiptsWriter, type ReceiptsWriterApi } from './receipts.js';
import { createSyncSources, type EphemeralSyncSources } from './sync-sources.js';
import { ToDeviceReader, ToDeviceWriter, type ToDeviceWriterApi } from './to-device.js';
import { TypingHandler, TypingReader, TypingWriter, type TypingWriterApi } from './typing.js';

export interface EphemeralWriters {
  typing: TypingWriterApi;
  receipts: ReceiptsWriterApi;
  accountData: AccountDataWriterApi;
  presence: PresenceWriterApi;
  toDevice: ToDeviceWriterApi;
  pushRules: PushRulesWriterApi;
}

export interface EphemeralServices {
  typing: TypingHandler;
  receipts: ReceiptsHandler;
  accountData: AccountDataHandler;
  presence: PresenceHandler;
  toDevice: ToDeviceWriterApi;
  pushRules: PushRulesHandler;
  filters: FiltersHandler;
  /** What /sync reads of these streams. */
  syncSources: EphemeralSyncSources;
  /** The events writer's side effect computing notifications (hook it into `EventsWriterDeps.sideEffects`). */
  pushActions: EventSideEffects;
  ephemeralWriters: EphemeralWriters;
  /** Stops the typing and presence timers and bus subscriptions (process shutdown). */
  closeEphemeral(): void;
}

export async function createEphemeralServices(core: CoreDeps): Promise<EphemeralServices> {
  const { db, bus, instanceName, now, roomState, eventCache } = core;
  const log = componentLogger(core.log, 'ephemeral');
  const stores = {
    accountData: new AccountDataStore(db),
    receipts: new ReceiptsStore(db),
    toDevice: new ToDeviceStore(db),
    presence: new PresenceStore(db),
    pushRules: new PushRulesStore(db),
    pushActions: new PushActionsStore(db),
    filters: new FiltersStore(db),
  };

  const typingWriter = new TypingWriter(bus, instanceName);
  const receiptsWriter = await ReceiptsWriter.create({ db, store: stores.receipts, bus, instanceName });
  const accountDataWriter = await AccountDataWriter.create({ db, store: stores.accountData, eventCache, bus, instanceName });
  const presenceWriter = await PresenceWriter.create({ db, store: stores.presence, roomState, bus, instanceName, now, log });
  const toDeviceWriter = await ToDeviceWriter.create({
    db,
    store: stores.toDevice,
    users: core.stores.users,
    bus,
    instanceName,
    serverName: core.serverName,
    now,
    log,
  });
  const pushRulesWriter = await PushRulesWriter.create({ db, store: stores.pushRules, bus, instanceName });
  // Syncs compare tokens against the notifier's positions: start it where each stream stands.
  core.notifier.advance('typing', typingWriter.currentPosition);
  core.notifier.advance('receipts', receiptsWriter.currentPosition);
  core.notifier.advance('account_data', accountDataWriter.currentPosition);
  core.notifier.advance('presence', presenceWriter.currentPosition);
  core.notifier.advance('to_device', toDeviceWriter.currentPosition);
  core.notifier.advance('push_rules', pushRulesWriter.currentPosition);

  const typingReader = new TypingReader(bus);
  const pushRulesReader = new PushRulesReader(stores.pushRules, bus);
  const presenceReader = new PresenceReader(stores.presence, roomState, now);
  const pushActions = new PushActions(core.serverName, pushRulesReader, stores.pushActions, stores.receipts, core.memberships, eventCache, core.bus);

  const syncSources = createSyncSources({
    bus,
    now,
    typing: typingReader,
    receipts: stores.receipts,
    accountData: stores.accountData,
    pushRules: pushRulesReader,
    toDevice: new ToDeviceReader(stores.toDevice),
    presence: presenceReader,
    presenceWriter,
    pushActions,
  });

  return {
    typing: new TypingHandler(roomState, typingWriter),
    receipts: new ReceiptsHandler(roomState, eventCache, receiptsWriter, accountDataWriter, now),
    accountData: new AccountDataHandler(stores.accountData, roomState, pushRulesReader, accountDataWriter),
    presence: new PresenceHandler(presenceReader, presenceWriter),
    toDevice: toDeviceWriter,
    pushRules: new PushRulesHandler(pushRulesReader, pushRulesWriter),
    filters: new FiltersHandler(stores.filters),
    syncSources: syncSources.sources,
    pushActions: pushActions.sideEffect,
    ephemeralWriters: {
      typing: typingWriter,
      receipts: receiptsWriter,
      accountData: accountDataWriter,
      presence: presenceWriter,
      toDevice: toDeviceWriter,
      pushRules: pushRulesWriter,
    },
    closeEphemeral() {
      typingWriter.close();
      typingReader.close();
      presenceWriter.close();
      pushRulesReader.close();
      syncSources.close();
    },
  };
}
