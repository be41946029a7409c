// "A server we were backing off from contacted us": the inbound side calls `notice(origin)` for
// each authenticated request (`onRemoteServerUp` of the federation services). When the origin is
// in backoff, `REMOTE_SERVER_UP` goes on the bus so the sender instance that owns it (in any
// process) retries at once (spec: server-server API — nothing; Synapse does this so a server
// coming back is not left waiting out its retry interval).
//
// Requests come often; the retry state is looked up at most once per origin every few seconds,
// and the command is sent at most that often. A request within those seconds is not forgotten: the
// origin may have started failing since the last look (a server that restarts quickly), so it is
// looked at again once the interval is over.

import type { ReplicationBus } from '../../streams/bus.js';
import type { FederationDestinationsStore } from '../../storage/federation-destinations-store.js';
import type { Logger } from '../../util/log.js';

const CHECK_INTERVAL_MS = 5_000;

export class RemoteServerUpNotifier {
  private readonly checked = new Map<string, number>();
  /** Origins that contacted us within the interval, each looked at again when it is over. */
  private readonly deferred = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: Pick<FederationDestinationsStore, 'retryTimings'>,
    private readonly bus: Pick<ReplicationBus, 'send'>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly checkIntervalMs = CHECK_INTERVAL_MS,
  ) {}

  notice(origin: string): void {
    const now = this.now();
    const last = this.checked.get(origin);
    if (last !== undefined && now - last < this.checkIntervalMs) {
      if (!this.deferred.has(origin)) {
        const timer = setTimeout(
          () => {
            this.deferred.delete(origin);
            this.check(origin, this.now());
          },
          last + this.checkIntervalMs - now,
        );
        timer.unref();
        this.deferred.set(origin, timer);
      }
      return;
    }
    this.check(origin, now);
  }

  /** Stops the looks still to come. */
  close(): void {
    for (const timer of this.deferred.values()) clearTimeout(timer);
    this.deferred.clear();
  }

  private check(origin: string, now: number): void {
    if (this.checked.size > 10_000) this.checked.clear();
    this.checked.set(origin, now);
    this.store.retryTimings(origin).then(
      (timings) => {
        if (!timings || (timings.retryIntervalMs === 0 && timings.failureTs === undefined)) return;
        this.bus.send({ name: 'REMOTE_SERVER_UP', server: origin });
      },
      (err: unknown) =>
        this.log.debug({ origin, err: (err as Error).message }, 'could not look up the retry state of a server that contacted us'),
    );
  }
}
