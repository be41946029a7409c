// Which room events a user may see (history visibility), judged by the state at each event.
// Every read path (sync, pagination, context, single events) filters through here.
//
// The state at each event comes from the room's state intervals: one query fetches the
// history-visibility and the user's membership intervals overlapping the whole batch, so a page
// of events costs two queries, not two per event.

import { filterVisibleEvents, type EventStateContext, type VisibleEvent } from '../../core/visibility.js';
import type { EventCache, StoredEvent } from './event-cache.js';
import type { RoomStateReader } from './room-state.js';

export class EventVisibility {
  constructor(
    private readonly roomState: Pick<RoomStateReader, 'intervalsOverlapping'>,
    private readonly eventCache: EventCache,
  ) {}

  /**
   * The events of one room (in the given order) that `userId` may see, with the user's
   * membership at each. `currentMembership` is the user's membership now; `joinedSinceEvent`
   * overrides the spec's "joined since" test for the batch (see core/visibility.ts).
   */
  async filter(
    userId: string,
    roomId: string,
    events: readonly StoredEvent[],
    options: { currentMembership: string | undefined; joinedSinceEvent?: boolean; ignoredUsers?: ReadonlySet<string> },
  ): Promise<VisibleEvent<StoredEvent>[]> {
    if (events.length === 0) return [];
    let min = Infinity;
    let max = -Infinity;
    for (const e of events) {
      min = Math.min(min, e.streamOrdering);
      max = Math.max(max, e.streamOrdering);
    }
    // The state *before* the first event matters for boundary events, so start one earlier.
    const rows = await this.roomState.intervalsOverlapping(
      roomId,
      [
        ['m.room.history_visibility', ''],
        ['m.room.member', userId],
      ],
      min - 1,
      max,
    );
    const visibilityEvents = await this.eventCache.getStateEvents(
      rows.filter((r) => r.type === 'm.room.history_visibility').map((r) => r.event_id),
    );
    const at = (type: string, position: number) =>
      rows.find((r) => r.type === type && r.from_stream <= position && (r.to_stream === null || r.to_stream > position));

    const contextOf = (stored: StoredEvent): EventStateContext => {
      const position = stored.streamOrdering;
      const visibilityRow = at('m.room.history_visibility', position);
      const memberRow = at('m.room.member', position);
      const context: { historyVisibility: unknown; membership: string | undefined; prevContent?: Record<string, unknown> } = {
        historyVisibility: visibilityRow ? visibilityEvents.get(visibilityRow.event_id)?.event.content.history_visibility : undefined,
        membership: memberRow?.membership ?? undefined,
      };
      const { event } = stored;
      if (event.type === 'm.room.history_visibility' && event.stateKey === '') {
        const before = at('m.room.history_visibility', position - 1);
        context.prevContent = before ? visibilityEvents.get(before.event_id)?.event.content : undefined;
      } else if (event.type === 'm.room.member' && event.stateKey === userId) {
        const before = at('m.room.member', position - 1);
        context.prevContent = before?.membership ? { membership: before.membership } : undefined;
      }
      return context as EventStateContext;
    };

    const storedOf = new Map(events.map((stored) => [stored.event, stored]));
    return filterVisibleEvents(
      userId,
      events.map((stored) => stored.event),
      (event) => contextOf(storedOf.get(event)!),
      {
        currentMembership: options.currentMembership,
        ...(options.joinedSinceEvent !== undefined ? { joinedSinceEvent: options.joinedSinceEvent } : {}),
        ...(options.ignoredUsers ? { ignoredUsers: options.ignoredUsers } : {}),
      },
    ).map((visible) => ({ event: storedOf.get(visible.event)!, membership: visible.membership }));
  }
}
