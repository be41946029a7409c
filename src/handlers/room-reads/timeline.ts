// Walking a room's history in either direction, for /messages and /context.
//
// A room's history is a line of events-stream positions (history backfilled from other servers
// continues it below 0). A walk has a cursor (a token position:
// the gap just after that event), a direction, and an exclusive far bound. Events are read in
// batches, matched against the client's filter, then against history visibility, until `limit`
// events are shown, the range is exhausted, or a scan budget is spent (a filter that matches
// little must not make one request read a whole room; the client continues from the cursor).
//
// `more` tells whether anything is left beyond the cursor inside the range, so /messages can
// leave out `end` exactly when nothing is left (S:data/api/client-server/message_pagination.yaml).

import { eventMatchesFilter, filterBlocksAll, type RoomEventFilter } from '../../core/filters.js';
import type { VisibleEvent } from '../../core/visibility.js';
import type { CoreParts } from '../kernel/core.js';
import type { StoredEvent } from '../kernel/event-cache.js';
import type { ReadScope, RoomAccess } from './access.js';

export type Direction = 'b' | 'f';

export interface WalkRequest {
  readonly dir: Direction;
  /** Token position to start from. */
  readonly from: number;
  /** Token position to stop at (exclusive of the events beyond it); default: the start or the end of the room. */
  readonly to?: number | undefined;
  readonly limit: number;
  readonly filter?: RoomEventFilter | undefined;
}

export interface Walk {
  /** In walking order: newest first for `b`, oldest first for `f`. */
  readonly events: VisibleEvent<StoredEvent>[];
  /** Token position after the last event considered (where a next walk continues). */
  readonly cursor: number;
  /** Whether events remain between `cursor` and the far bound. */
  readonly more: boolean;
}

/** Synapse's ceiling for /messages `limit`. */
export const MAX_PAGE_LIMIT = 1000;
const MIN_BATCH = 50;

export class Timeline {
  constructor(
    private readonly core: CoreParts<'notifier' | 'eventCache', 'events'>,
    private readonly access: RoomAccess,
  ) {}

  async walk(roomId: string, userId: string, scope: ReadScope, request: WalkRequest): Promise<Walk> {
    const { dir, limit, filter } = request;
    const current = this.core.notifier.currentPositions().events;
    // Events in (low, high]; the far bound of the range is `low` going backwards, `high` forwards.
    // Below 0 is history backfilled from other servers (negative positions, oldest lowest).
    const low = dir === 'b' ? (request.to ?? Number.MIN_SAFE_INTEGER) : request.from;
    let high = dir === 'b' ? request.from : (request.to ?? current);
    high = Math.min(high, current, scope.upTo ?? Infinity);
    let cursor = dir === 'b' ? Math.min(Math.max(request.from, low), high) : request.from;
    if (low >= high || (filter !== undefined && filterBlocksAll(filter))) return { events: [], cursor, more: false };

    const shown: VisibleEvent<StoredEvent>[] = [];
    const batchSize = Math.min(MAX_PAGE_LIMIT, Math.max(MIN_BATCH, 2 * limit));
    const budget = Math.max(10 * limit, MAX_PAGE_LIMIT);
    let scanned = 0;
    while (shown.length < limit && scanned < budget) {
      const rows =
        dir === 'b'
          ? await this.core.stores.events.roomEventsBetween(roomId, low, cursor, batchSize, 'backwards')
          : await this.core.stores.events.roomEventsBetween(roomId, cursor, high, batchSize, 'forwards');
      if (rows.length === 0) return { events: shown, cursor, more: false };
      const stored = await this.core.eventCache.fromRows(rows);
      const matching = filter === undefined ? stored : stored.filter((s) => eventMatchesFilter(filter, s.event));
      const visible = new Map((await this.access.visibleEvents(roomId, userId, scope, matching)).map((v) => [v.event.event.eventId, v]));
      for (const row of rows) {
        if (shown.length === limit) return { events: shown, cursor, more: true };
        const event = visible.get(row.event_id);
        if (event !== undefined) shown.push(event);
        const position = Number(row.stream_ordering);
        cursor = dir === 'b' ? position - 1 : position;
        scanned += 1;
      }
      if (rows.length < batchSize) return { events: shown, cursor, more: false };
    }
    return { events: shown, cursor, more: await this.anyBeyond(roomId, dir, cursor, low, high) };
  }

  private async anyBeyond(roomId: string, dir: Direction, cursor: number, low: number, high: number): Promise<boolean> {
    const next =
      dir === 'b'
        ? await this.core.stores.events.roomEventsBetween(roomId, low, cursor, 1, 'backwards')
        : await this.core.stores.events.roomEventsBetween(roomId, cursor, high, 1, 'forwards');
    return next.length > 0;
  }
}
