// Which thread an event belongs to, for threaded receipts and per-thread notification counts
// (S:content/client-server-api/modules/receipts.md §Threaded read receipts).

import type { RoomEvent } from '../../core/events.js';
import type { EventCache } from '../kernel/event-cache.js';
import { relationOf } from '../kernel/events-writer.js';

/** The thread id of the main timeline. */
export const MAIN_THREAD = 'main';

/** The spec recommends at most 3 hops through relations before deciding there is no thread. */
const MAX_HOPS = 3;

/**
 * The thread root's event id if the event is in a thread (an `m.thread` relation, or a relation to
 * an event in a thread, within three hops), otherwise `main`. Thread roots are in `main`.
 */
export async function threadOf(event: RoomEvent, events: Pick<EventCache, 'get'>): Promise<string> {
  let relation = relationOf(event.content);
  for (let hop = 0; relation !== undefined && hop < MAX_HOPS; hop++) {
    if (relation.relType === 'm.thread') return relation.eventId;
    const parent = await events.get(relation.eventId);
    if (!parent || parent.event.roomId !== event.roomId) return MAIN_THREAD;
    relation = relationOf(parent.event.content);
  }
  return MAIN_THREAD;
}
