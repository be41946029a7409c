// Backfilling (spec: server-server API §Backfilling and retrieving missing events; client-server API
// §Syncing, /messages): when a client pages back past the oldest event we hold of a room joined
// over federation, the history before it is asked of a server in the room.
//
// The room's backward extremities (the events we know of but hold nothing before: after a remote
// join, the join's prev events) are sent as `v` to `GET /_matrix/federation/v1/backfill/{roomId}`.
// The answer's PDUs pass steps 1–3 here (format, signatures, content hash, as `/send`), then the
// room's events writer checks and stores them as history (`backfillPdus`: steps 4–5, the state at
// their gaps from `/state_ids`, negative positions; see federation/pdu-intake.ts). Servers are
// tried in turn (those of the room's joined members, at most 5) until one answers with anything
// new. One backfill per room at a time in a process: concurrent pagers share it.

import { serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { trimReceivedPdu } from '../../core/pdu-checks.js';
import type { FederationClient } from '../../federation/client.js';
import { DatabaseUnavailableError } from '../../storage/database.js';
import type { Logger } from '../../util/log.js';
import type { CoreParts } from '../kernel/core.js';
import type { PduChecker } from './fetcher.js';

/** Events asked for per `/backfill` (Synapse asks 100, and serves at most 100). */
export const BACKFILL_LIMIT = 100;
/** Backward extremities sent as `v` at most (the spec sets no bound; Synapse sends 5). */
const MAX_EXTREMITIES = 20;
/** Servers tried at most for one backfill. */
const MAX_SERVERS = 5;
const BACKFILL_TIMEOUT_MS = 30_000;

export type BackfillResult =
  /** New history is stored. */
  | 'stored'
  /** Nothing to fetch (no backward extremity), or nothing new could be had from any server. */
  | 'nothing';

export interface BackfillApi {
  /** Fetches history before the room's oldest events, once per room at a time. */
  backfill(roomId: string): Promise<BackfillResult>;
  /** Whether the room has history before its oldest events we hold (backward extremities) to fetch. */
  hasHistoryToFetch(roomId: string): Promise<boolean>;
}

export class Backfiller implements BackfillApi {
  private readonly inFlight = new Map<string, Promise<BackfillResult>>();

  constructor(
    private readonly core: CoreParts<'serverName' | 'roomGraph' | 'roomState' | 'eventsWriter' | 'eventCache' | 'now'>,
    private readonly client: Pick<FederationClient, 'request'>,
    private readonly checker: Pick<PduChecker, 'check'>,
    private readonly log: Logger,
  ) {}

  backfill(roomId: string): Promise<BackfillResult> {
    const running = this.inFlight.get(roomId);
    if (running) return running;
    const started = this.run(roomId).finally(() => this.inFlight.delete(roomId));
    this.inFlight.set(roomId, started);
    return started;
  }

  async hasHistoryToFetch(roomId: string): Promise<boolean> {
    return (await this.core.roomGraph.store.backwardExtremities(roomId)).length > 0;
  }

  private async run(roomId: string): Promise<BackfillResult> {
    const extremities = (await this.core.roomGraph.store.backwardExtremities(roomId)).sort().slice(0, MAX_EXTREMITIES);
    if (extremities.length === 0) return 'nothing';
    const version = await this.core.eventCache.roomVersion(roomId);
    if (!version) return 'nothing';
    for (const server of await this.candidates(roomId)) {
      let pdus: unknown[];
      try {
        const answer = await this.client.request(server, {
          method: 'GET',
          path: `/_matrix/federation/v1/backfill/${encodeURIComponent(roomId)}`,
          query: { v: extremities, limit: BACKFILL_LIMIT },
          timeoutMs: BACKFILL_TIMEOUT_MS,
          allowNul: true,
        });
        if (!isJsonObject(answer) || !Array.isArray(answer.pdus)) throw new Error(`${server} answered /backfill without pdus`);
        pdus = answer.pdus.slice(0, BACKFILL_LIMIT + extremities.length);
      } catch (err) {
        this.log.info({ roomId, server, err: String(err) }, 'backfill request failed');
        continue;
      }
      // Steps 1–3, as for `/send`: a PDU that fails is left out; a wrong content hash keeps the redacted event.
      const now = this.core.now();
      const checked = await this.checker.check(
        pdus.map((pdu) => trimReceivedPdu(pdu, now).pdu),
        version,
        roomId,
      );
      const kept: JsonObject[] = [];
      for (const { outcome } of checked) if (outcome.outcome !== 'drop') kept.push(outcome.event.pdu);
      if (kept.length === 0) continue;
      try {
        const outcomes = await this.core.eventsWriter.backfillPdus(server, roomId, kept);
        const stored = outcomes.filter((o) => o.outcome === 'backfilled').length;
        this.log.info({ roomId, server, received: pdus.length, stored }, 'backfilled history');
        if (stored > 0) return 'stored';
      } catch (err) {
        if (err instanceof DatabaseUnavailableError) throw err;
        this.log.warn({ roomId, server, err: String(err) }, 'storing backfilled history failed');
      }
    }
    return 'nothing';
  }

  /** The servers of the room's joined members (not ours), most members first, then the room id's server. */
  private async candidates(roomId: string): Promise<string[]> {
    const counts = new Map<string, number>();
    for (const userId of await this.core.roomState.members(roomId, 'join')) {
      const server = serverNameOf(userId);
      if (server && server !== this.core.serverName) counts.set(server, (counts.get(server) ?? 0) + 1);
    }
    const servers = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([server]) => server);
    const roomServer = serverNameOf(roomId);
    if (roomServer && roomServer !== this.core.serverName && !counts.has(roomServer)) servers.push(roomServer);
    return servers.slice(0, MAX_SERVERS);
  }
}
