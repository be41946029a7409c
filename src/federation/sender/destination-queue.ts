// Everything waiting for one destination, and its transactions (spec: server-server API
// §Transactions): at most one in flight, at most 50 PDUs and 100 EDUs each, retried with the same
// transaction id until the destination answers 200, with a growing pause while it cannot be
// reached.
//
// PDUs come two ways. Live: the events reader hands each of our events to the queues of its
// destinations, in stream order. Catching up: after a failure, a restart, or when the live queue
// grows too long (a slow destination), the in-memory PDUs are dropped and the events are read back
// from the database from the destination's last acknowledged position (catch-up.ts) until the
// queue has caught up with the reader, then it goes live again. So memory stays bounded however
// long a destination is away, and nothing is lost: the acknowledged position only moves after a
// 200 (or over events that were not for the destination).
//
// EDUs: typing and presence are kept in memory, latest per user (and room), and dropped when
// stale; receipts, device lists and cross-signing keys are read from their streams past the
// destination's acknowledged positions (durable-edus.ts); to-device messages wait in the outbox
// table until acknowledged.

import type { JsonValue } from '../../core/json.js';
import { presenceEdu, refusedPdus, transactionBody, typingEdu, type OutboundEdu, type OutboundPresence } from '../../core/outbound-edus.js';
import type { Database } from '../../storage/database.js';
import type { DestinationRow, FederationDestinationsStore } from '../../storage/federation-destinations-store.js';
import type { FederationOutboxStore } from '../../storage/federation-outbox-store.js';
import type { FederationSenderReads } from '../../storage/federation-sender-reads.js';
import type { Logger } from '../../util/log.js';
import type { FederationClient } from '../client.js';
import { FederationDeniedError, FederationHttpError, FederationRequestError } from '../errors.js';
import { formatDelay, nextRetryInterval, type RetryPolicy } from './backoff.js';
import { DestinationCatchUp } from './catch-up.js';
import { deviceListEdusFor, receiptEdusFor, type SharedRooms } from './durable-edus.js';
import type { OutboundPdu } from './events-reader.js';

export const MAX_PDUS = 50;
export const MAX_EDUS = 100;
/** Live PDUs kept in memory for a destination before it is caught up from the database instead. */
const MAX_LIVE_PDUS = 1_000;
/** A typing notification older than this is not worth sending (clients time typing out). */
export const TYPING_STALE_MS = 30_000;
/** A presence update older than this is not sent (a later one will be). */
export const PRESENCE_STALE_MS = 5 * 60_000;
/** After a failure to read what to send (the database is unavailable), try again after this. */
const READ_RETRY_MS = 5_000;

export interface QueueEnvironment {
  readonly origin: string;
  readonly db: Database;
  readonly client: Pick<FederationClient, 'request'>;
  readonly store: FederationDestinationsStore;
  readonly outbox: FederationOutboxStore;
  readonly reads: FederationSenderReads;
  readonly shared: SharedRooms;
  /** How far the events reader has handed events out. */
  readonly distributedUpTo: () => number;
  /** Where the receipts, device_lists and to_device streams can be read up to. */
  readonly readable: () => { receipts: number; device_lists: number; to_device: number };
  readonly policy: RetryPolicy;
  readonly nextTxnId: () => string;
  /** Limits how many destinations build and send at once. */
  readonly slots: Semaphore;
  readonly log: Logger;
  readonly now: () => number;
  readonly random: () => number;
  readonly requestTimeoutMs: number;
  readonly largeGap: number;
  /** Told of each transaction's outcome (tests, metrics). */
  readonly onTransaction?: (report: TransactionReport) => void;
}

export interface TransactionReport {
  readonly destination: string;
  readonly txnId: string;
  readonly pdus: number;
  readonly edus: number;
  readonly outcome: 'sent' | 'failed' | 'refused';
  /** For a failure: the pause before the next attempt. */
  readonly retryInMs?: number;
}

interface Transaction {
  txnId: string;
  originServerTs: number;
  pdus: OutboundPdu[];
  edus: Array<OutboundEdu & { ephemeralAt?: number; staleAfterMs?: number }>;
  /** Where the destination's positions are once this is acknowledged. */
  eventsUpTo: number;
  receiptsUpTo: number;
  deviceListsUpTo: number;
  deviceListsPart: number;
  /** Outbox rows up to this one are carried. */
  toDeviceUpTo: number | undefined;
  /** This transaction ends a catch-up of this many events (said in the log once it is sent). */
  endsCatchUpOf: number | undefined;
}

/** What a destination's queue looks like (for admins and tests). */
export interface DestinationStatus {
  readonly destination: string;
  readonly mode: 'live' | 'catching-up';
  readonly lastAckedEvents: number;
  readonly queuedPdus: number;
  readonly transactionInFlight: boolean;
  readonly consecutiveFailures: number;
  readonly retryIntervalMs: number;
  readonly nextRetryTs: number | undefined;
}

export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }
}

export class DestinationQueue {
  private mode: 'live' | 'catching-up' = 'catching-up';
  /** Events up to here are in a transaction (sent or pending) or were not for the destination. */
  private cursor: number;
  /** While catching up: the reader's position this round catches up to. */
  private catchUpBound: number | undefined;
  private catchUpSent = 0;
  private readonly catchUp: DestinationCatchUp;
  private pdus: OutboundPdu[] = [];
  private readonly typing = new Map<string, { roomId: string; userId: string; typing: boolean; at: number }>();
  private readonly presence = new Map<string, { update: OutboundPresence; at: number }>();
  private receiptsWaiting = true;
  private deviceListsWaiting = true;
  private toDeviceWaiting = true;
  private deviceListsPart = 0;
  private pending: Transaction | undefined;
  private running = false;
  private newData = false;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();

  /**
   * `live`: the events reader hands this queue every event after `state.lastAckedEvents` (a
   * destination it has just met); otherwise the queue starts by catching up from the database.
   */
  constructor(
    private readonly env: QueueEnvironment,
    private state: DestinationRow,
    live = false,
  ) {
    this.cursor = state.lastAckedEvents;
    if (live) this.mode = 'live';
    this.catchUp = new DestinationCatchUp(state.destination, env.origin, env.reads, {
      pageSize: MAX_PDUS,
      largeGap: env.largeGap,
      log: env.log,
    });
  }

  get destination(): string {
    return this.state.destination;
  }

  status(): DestinationStatus {
    return {
      destination: this.destination,
      mode: this.mode,
      lastAckedEvents: this.state.lastAckedEvents,
      queuedPdus: this.pdus.length,
      transactionInFlight: this.pending !== undefined,
      consecutiveFailures: this.failures,
      retryIntervalMs: this.state.retryIntervalMs,
      nextRetryTs: this.backingOff() ? this.state.retryLastTs + this.state.retryIntervalMs : undefined,
    };
  }

  // ---- what there is to send ----

  /** One of our events for this destination (in stream order). */
  addPdu(event: OutboundPdu): void {
    if (this.mode !== 'live' || event.position <= this.cursor) return this.wake();
    this.pdus.push(event);
    if (this.pdus.length > MAX_LIVE_PDUS) this.startCatchingUp('the destination is slow');
    this.wake();
  }

  addTyping(roomId: string, userId: string, typing: boolean): void {
    this.typing.set(`${roomId}\u0000${userId}`, { roomId, userId, typing, at: this.env.now() });
    this.wake();
  }

  addPresence(update: OutboundPresence): void {
    this.presence.set(update.userId, { update, at: this.env.now() });
    this.wake();
  }

  receiptsChanged(): void {
    this.receiptsWaiting = true;
    this.wake();
  }

  deviceListsChanged(): void {
    this.deviceListsWaiting = true;
    this.wake();
  }

  toDeviceWaitingNow(): void {
    this.toDeviceWaiting = true;
    this.wake();
  }

  /** The destination contacted us: it is up, so stop waiting and send now. */
  remoteServerUp(): void {
    if (this.stopped || (this.state.retryIntervalMs === 0 && this.state.failureTs === undefined)) return;
    this.env.log.info({ destination: this.destination }, `${this.destination} contacted us: retrying now`);
    this.state = { ...this.state, failureTs: undefined, retryLastTs: 0, retryIntervalMs: 0 };
    this.env.store.setRetryTimings(this.destination, { failureTs: undefined, retryLastTs: 0, retryIntervalMs: 0 }).catch((err: unknown) => {
      this.env.log.warn({ destination: this.destination, err: (err as Error).message }, 'could not record that the destination is up');
    });
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wake();
  }

  /** Stops sending; resolves once no transaction is being built or sent (bounded by the caller). */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    return this.idle;
  }

  // ---- the transmission loop ----

  wake(): void {
    this.newData = true;
    if (this.running || this.stopped) return;
    if (this.backingOff()) return this.scheduleRetry();
    this.running = true;
    this.idle = this.run().finally(() => {
      this.running = false;
    });
  }

  private backingOff(): boolean {
    return this.state.retryIntervalMs > 0 && this.env.now() < this.state.retryLastTs + this.state.retryIntervalMs;
  }

  private scheduleRetry(delayMs = this.state.retryLastTs + this.state.retryIntervalMs - this.env.now()): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.wake();
      },
      Math.max(0, delayMs),
    );
    this.timer.unref();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.backingOff()) return this.scheduleRetry();
      // A slot per transaction, so a destination that always has something to send does not keep
      // the others waiting.
      const release = await this.env.slots.acquire();
      try {
        if (this.stopped) return;
        this.newData = false;
        let txn = this.pending;
        if (txn) {
          txn = this.refreshEphemeral(txn);
          if (!txn) {
            // Nothing of it was worth sending any more: build the next one.
            this.pending = undefined;
            continue;
          }
        } else {
          try {
            txn = await this.build();
          } catch (err) {
            if (this.stopped) return;
            this.env.log.warn(
              { destination: this.destination, err: (err as Error).message },
              `could not read what to send to ${this.destination}; trying again in ${formatDelay(READ_RETRY_MS)}`,
            );
            return this.scheduleRetry(READ_RETRY_MS);
          }
        }
        this.pending = txn;
        if (!txn) {
          if (this.newData || this.mode === 'catching-up') continue;
          return;
        }
        if (!(await this.transmit(txn))) return;
      } finally {
        release();
      }
    }
  }

  /** Drops stale typing and presence from a transaction being retried (then it is a new one). */
  private refreshEphemeral(txn: Transaction): Transaction | undefined {
    const now = this.env.now();
    const edus = txn.edus.filter((e) => e.ephemeralAt === undefined || now - e.ephemeralAt <= (e.staleAfterMs ?? 0));
    if (edus.length === txn.edus.length) return txn;
    const durable = txn.pdus.length > 0 || edus.length > 0 || txn.toDeviceUpTo !== undefined;
    if (!durable) return undefined;
    // Different content is a different transaction: the receiver may have seen the first one.
    return { ...txn, txnId: this.env.nextTxnId(), edus };
  }

  private startCatchingUp(reason: string): void {
    if (this.mode === 'catching-up') return;
    this.env.log.debug({ destination: this.destination, reason, dropped: this.pdus.length }, 'catching up from the database');
    this.mode = 'catching-up';
    this.pdus = [];
    this.catchUpBound = undefined;
    this.catchUp.reset();
  }

  /** The next transaction, or undefined when there is nothing to send now. */
  private async build(): Promise<Transaction | undefined> {
    const { pdus, eventsUpTo, endsCatchUpOf } = await this.takePdus();
    const edus: Transaction['edus'] = [];
    let budget = MAX_EDUS;
    const readable = this.env.readable();

    // To-device messages first: someone's encryption is waiting for them.
    let toDeviceUpTo: number | undefined;
    if (this.toDeviceWaiting) {
      this.toDeviceWaiting = false;
      const limit = Math.min(50, budget - 10);
      // Only rows every lower position of which has committed: a row committing late below one
      // already sent would otherwise be deleted with it, unsent.
      const rows = await this.env.outbox.pending(this.destination, readable.to_device, limit);
      if (rows.length === limit) this.toDeviceWaiting = true;
      for (const row of rows) {
        try {
          edus.push({ edu_type: 'm.direct_to_device', content: JSON.parse(row.eduJson) as never });
        } catch {
          this.env.log.error(
            { destination: this.destination, messageId: row.messageId },
            'an outbox to-device message is not JSON; dropped',
          );
        }
        toDeviceUpTo = row.streamId;
      }
      budget -= edus.length;
    }

    let deviceListsUpTo = this.state.deviceListsPosition;
    let deviceListsPart = this.deviceListsPart;
    if (this.deviceListsWaiting || deviceListsUpTo < readable.device_lists) {
      this.deviceListsWaiting = false;
      const found = await deviceListEdusFor(
        this.destination,
        this.env.origin,
        this.state.deviceListsPosition,
        readable.device_lists,
        Math.min(budget - 10, 60),
        this.deviceListsPart,
        this.env.reads,
        this.env.shared,
      );
      edus.push(...found.edus);
      budget -= found.edus.length;
      deviceListsUpTo = found.upTo;
      deviceListsPart = found.partOfNext;
      if (found.more) this.deviceListsWaiting = true;
    }

    let receiptsUpTo = this.state.receiptsPosition;
    if (this.receiptsWaiting || receiptsUpTo < readable.receipts) {
      this.receiptsWaiting = false;
      const found = await receiptEdusFor(
        this.destination,
        this.env.origin,
        this.state.receiptsPosition,
        readable.receipts,
        Math.min(budget - 5, 10),
        this.env.reads,
        this.env.shared,
      );
      edus.push(...found.edus);
      budget -= found.edus.length;
      receiptsUpTo = found.upTo;
      if (found.more) this.receiptsWaiting = true;
    }

    const now = this.env.now();
    for (const [key, entry] of this.typing) {
      if (budget <= 1) break;
      this.typing.delete(key);
      if (now - entry.at > TYPING_STALE_MS) continue;
      edus.push({ ...typingEdu(entry.roomId, entry.userId, entry.typing), ephemeralAt: entry.at, staleAfterMs: TYPING_STALE_MS });
      budget--;
    }
    if (budget > 0 && this.presence.size > 0) {
      const fresh = [...this.presence.values()].filter((p) => now - p.at <= PRESENCE_STALE_MS);
      this.presence.clear();
      if (fresh.length > 0) {
        const oldest = Math.min(...fresh.map((p) => p.at));
        edus.push({ ...presenceEdu(fresh.map((p) => p.update)), ephemeralAt: oldest, staleAfterMs: PRESENCE_STALE_MS });
      }
    }

    const txn: Transaction = {
      txnId: '',
      originServerTs: now,
      pdus,
      edus,
      eventsUpTo,
      receiptsUpTo,
      deviceListsUpTo,
      deviceListsPart,
      toDeviceUpTo,
      endsCatchUpOf,
    };
    if (pdus.length === 0 && edus.length === 0 && toDeviceUpTo === undefined) {
      // Nothing to send, but the positions may have moved past rows that were not for it.
      await this.acknowledged(txn, false);
      if (endsCatchUpOf !== undefined) this.caughtUp(endsCatchUpOf);
      return undefined;
    }
    txn.txnId = this.env.nextTxnId();
    return txn;
  }

  /** The next PDUs, live or read back from the database. */
  private async takePdus(): Promise<{ pdus: OutboundPdu[]; eventsUpTo: number; endsCatchUpOf?: number }> {
    if (this.mode === 'live') {
      const pdus = this.pdus.splice(0, MAX_PDUS);
      // Once the queue is empty, everything the reader handed out is covered.
      this.cursor = this.pdus.length > 0 ? pdus[pdus.length - 1]!.position : Math.max(this.cursor, this.env.distributedUpTo());
      return { pdus, eventsUpTo: this.cursor };
    }
    for (let pages = 0; pages < 20; pages++) {
      if (this.catchUpBound === undefined || this.catchUpBound <= this.cursor) this.catchUpBound = this.env.distributedUpTo();
      const bound = this.catchUpBound;
      const page = await this.catchUp.next(this.cursor, bound);
      this.cursor = Math.max(this.cursor, page.upTo);
      this.catchUpSent += page.events.length;
      if (page.done && this.cursor >= this.env.distributedUpTo()) {
        // Caught up with the reader: from here on it hands events over directly.
        this.mode = 'live';
        this.catchUpBound = undefined;
        this.catchUp.reset();
        const caughtUp = this.catchUpSent;
        this.catchUpSent = 0;
        return { pdus: [...page.events], eventsUpTo: this.cursor, ...(caughtUp > 0 ? { endsCatchUpOf: caughtUp } : {}) };
      }
      if (page.events.length > 0) return { pdus: [...page.events], eventsUpTo: this.cursor };
    }
    // Many pages with nothing for this destination: let the loop record the progress and go on.
    return { pdus: [], eventsUpTo: this.cursor };
  }

  private async transmit(txn: Transaction): Promise<boolean> {
    const { destination } = this;
    const body = transactionBody(
      this.env.origin,
      txn.originServerTs,
      txn.pdus.map((p) => p.pdu),
      txn.edus.map((e) => ({ edu_type: e.edu_type, content: e.content })),
    );
    let answer: JsonValue;
    try {
      answer = await this.env.client.request(destination, {
        method: 'PUT',
        path: `/_matrix/federation/v1/send/${encodeURIComponent(txn.txnId)}`,
        body,
        timeoutMs: this.env.requestTimeoutMs,
      });
    } catch (err) {
      if (this.stopped) return false;
      return this.failed(txn, err);
    }
    for (const { eventId, error } of refusedPdus(answer)) {
      this.env.log.info({ destination, eventId, error }, `${destination} refused event ${eventId}: ${error}`);
    }
    const wasDown = this.failures > 0 || this.state.failureTs !== undefined;
    await this.acknowledged(txn, true);
    this.env.log.info(
      { destination, txnId: txn.txnId, pdus: txn.pdus.length, edus: txn.edus.length },
      `transaction sent to ${destination} (${txn.pdus.length} PDUs, ${txn.edus.length} EDUs)`,
    );
    if (wasDown) this.env.log.info({ destination, failures: this.failures }, `${destination} is reachable again`);
    if (txn.endsCatchUpOf !== undefined) this.caughtUp(txn.endsCatchUpOf);
    this.failures = 0;
    this.env.onTransaction?.({ destination, txnId: txn.txnId, pdus: txn.pdus.length, edus: txn.edus.length, outcome: 'sent' });
    return true;
  }

  private caughtUp(events: number): void {
    this.env.log.info(
      { destination: this.destination, events, upTo: this.state.lastAckedEvents },
      `caught up with ${this.destination} (${events} events)`,
    );
  }

  /** Records acknowledged positions (persisted; a failure to persist only means resending later). */
  private async acknowledged(txn: Transaction, answered: boolean): Promise<void> {
    const positions = {
      lastAckedEvents: Math.max(this.state.lastAckedEvents, txn.eventsUpTo),
      receiptsPosition: Math.max(this.state.receiptsPosition, txn.receiptsUpTo),
      deviceListsPosition: Math.max(this.state.deviceListsPosition, txn.deviceListsUpTo),
    };
    this.pending = undefined;
    this.deviceListsPart = txn.deviceListsPart;
    const moved =
      positions.lastAckedEvents !== this.state.lastAckedEvents ||
      positions.receiptsPosition !== this.state.receiptsPosition ||
      positions.deviceListsPosition !== this.state.deviceListsPosition;
    const now = this.env.now();
    const wasFailing = this.state.retryIntervalMs > 0 || this.state.failureTs !== undefined;
    this.state = answered
      ? { ...this.state, ...positions, failureTs: undefined, retryLastTs: 0, retryIntervalMs: 0, lastSuccessTs: now }
      : { ...this.state, ...positions };
    if (!answered && !moved) return;
    try {
      if (answered) {
        await this.env.db.transaction(async (tx) => {
          await this.env.store.acknowledge(tx, this.destination, positions, now);
          if (txn.toDeviceUpTo !== undefined) await this.env.outbox.deleteUpTo(tx, this.destination, txn.toDeviceUpTo);
        });
      } else {
        await this.env.store.advance(this.destination, positions);
      }
    } catch (err) {
      // The destination has what it acknowledged; after a restart it may get it again (harmless).
      this.env.log.warn(
        { destination: this.destination, err: (err as Error).message, wasFailing },
        'could not record what the destination acknowledged',
      );
    }
  }

  private async failed(txn: Transaction, err: unknown): Promise<boolean> {
    const { destination } = this;
    const report = { destination, txnId: txn.txnId, pdus: txn.pdus.length, edus: txn.edus.length };
    if (err instanceof FederationDeniedError || (err instanceof FederationHttpError && (err.status === 400 || err.status === 413))) {
      // The destination (or our whitelist) refuses this transaction as such: sending it again can
      // only be refused again and would hold back everything after it.
      this.env.log.error(
        { ...report, err: err.message },
        `${destination} refused transaction ${txn.txnId} (${txn.pdus.length} PDUs, ${txn.edus.length} EDUs): ` +
          `${err.message}; not sent again`,
      );
      await this.acknowledged(txn, !(err instanceof FederationDeniedError));
      this.env.onTransaction?.({ ...report, outcome: 'refused' });
      return true;
    }
    this.failures++;
    const interval = nextRetryInterval(this.state.retryIntervalMs, this.env.policy, this.env.random);
    const now = this.env.now();
    const timings = { failureTs: this.state.failureTs ?? now, retryLastTs: now, retryIntervalMs: interval };
    this.state = { ...this.state, ...timings };
    this.startCatchingUp('the transaction failed');
    const reason = err instanceof FederationRequestError ? err.message : String((err as Error)?.message ?? err);
    const kind = err instanceof FederationRequestError ? err.kind : 'error';
    const what = kind === 'unreachable' ? `${destination} unreachable` : `transaction to ${destination} failed`;
    this.env.log.warn(
      { ...report, kind, err: reason, failures: this.failures, retryInMs: interval },
      `${what}; retrying in ${formatDelay(interval)} (${reason})`,
    );
    this.env.onTransaction?.({ ...report, outcome: 'failed', retryInMs: interval });
    try {
      await this.env.store.setRetryTimings(destination, timings);
    } catch (storeErr) {
      this.env.log.warn({ destination, err: (storeErr as Error).message }, 'could not record the retry timings');
    }
    this.scheduleRetry();
    return false;
  }
}
