// Per-user and ephemeral streams: typing, receipts and read markers, presence, account data and
// tags, to-device messages, push rules (and the notifications they produce), filters.
//
// Each stream has one writer (the only code that allocates its positions, writes its rows and
// publishes them on the bus) behind an interface with plain-JSON arguments, so worker mode can put
// an RPC in between; everything else only reads. Which process runs each writer is the process
// composition's answer (`WriterSource`); `ephemeralWriters` exposes the writers this area calls.

import type { StreamName } from '../../streams/streams.js';
import { localWriters, type WriterSource } from '../../streams/writer-source.js';
import type { CoreDeps } from '../kernel/core.js';
import type { EventSideEffects } from '../kernel/events-writer.js';
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

/** The writer interface of each stream this area writes, by stream. */
export interface EphemeralStreamWriters {
  typing: TypingWriterApi;
  receipts: ReceiptsWriterApi;
  account_data: AccountDataWriterApi;
  presence: PresenceWriterApi;
  to_device: ToDeviceWriterApi;
  push_rules: PushRulesWriterApi;
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

/**
 * Builds the services. `writers.writer(stream, local)` decides, per stream, whether this process
 * writes it: it is given a factory for the local writer and returns the writer to use (the local
 * one, or one that calls the process that writes the stream). By default every writer is local.
 */
export async function createEphemeralServices(
  core: CoreDeps,
  writers: WriterSource<EphemeralStreamWriters> = localWriters(),
): Promise<EphemeralServices> {
  const { transactions, bus, instanceName, now, roomState, eventCache, stores } = core;
  const log = componentLogger(core.log, 'ephemeral');

  const local: Partial<EphemeralWriters & { closers: Array<() => void> }> = { closers: [] };
  const typingWriter = await writers.writer('typing', async () => {
    const writer = new TypingWriter(bus, instanceName);
    local.closers!.push(() => writer.close());
    return writer;
  });
  const receiptsWriter = await writers.writer('receipts', async () =>
    ReceiptsWriter.create({ transactions, store: stores.receipts, bus, instanceName, positions: core.positions }),
  );
  const accountDataWriter = await writers.writer('account_data', async () =>
    AccountDataWriter.create({ transactions, store: stores.accountData, eventCache, bus, instanceName }),
  );
  const presenceWriter = await writers.writer('presence', async () => {
    const writer = await PresenceWriter.create({ transactions, store: stores.presence, roomState, bus, instanceName, now, log });
    local.closers!.push(() => writer.close());
    return writer;
  });
  const toDeviceWriter = await writers.writer('to_device', async () =>
    ToDeviceWriter.create({
      transactions,
      store: stores.toDevice,
      outbox: stores.federationOutbox,
      users: stores.users,
      bus,
      instanceName,
      serverName: core.serverName,
      now,
      log,
    }),
  );
  const pushRulesWriter = await writers.writer('push_rules', async () =>
    PushRulesWriter.create({ transactions, store: stores.pushRules, bus, instanceName }),
  );
  // Syncs compare tokens against the notifier's positions: start it where each local writer stands
  // (remote writers report theirs over the bus).
  const startAt = (stream: StreamName, writer: unknown) => {
    const position = (writer as { currentPosition?: number }).currentPosition;
    if (position !== undefined) core.notifier.advance(stream, position);
  };
  startAt('typing', typingWriter);
  startAt('receipts', receiptsWriter);
  startAt('account_data', accountDataWriter);
  startAt('presence', presenceWriter);
  startAt('to_device', toDeviceWriter);
  startAt('push_rules', pushRulesWriter);

  const typingReader = new TypingReader(bus);
  const pushRulesReader = new PushRulesReader(stores.pushRules, bus);
  const presenceReader = new PresenceReader(stores.presence, roomState, now);
  const pushActions = new PushActions(
    core.serverName,
    pushRulesReader,
    stores.pushActions,
    stores.receipts,
    core.memberships,
    eventCache,
    core.bus,
  );

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
      for (const close of local.closers!) close();
      typingReader.close();
      pushRulesReader.close();
      syncSources.close();
    },
  };
}
