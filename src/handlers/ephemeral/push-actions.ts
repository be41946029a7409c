// Notifications: which local users an event notifies or highlights, computed when the event is
// persisted (so counts change in the same /sync as the event, push.md §Server behaviour), and the
// unread counts /sync reports.
//
// The side effect runs inside the events writer's transaction for every event, once per local
// member, so it is kept to plain loops: the recipients and context come from the state before the
// event (already in memory), rule sets are compiled once per user and cached until the user's rules
// change, and per-event work (looked-up values, the body's words) is shared by all users inside the
// evaluator. Rows are written for notifying actions only.
//
// Unread counts follow push.md §Receiving notifications and the threading rules of receipts.md: a
// notification in thread T is unread when it comes after the user's unthreaded read receipt and
// after their threaded one for T. Read receipts are the later of `m.read` and `m.read.private`, and
// sending an event counts as reading its thread up to it (push.md §Marking notifications as read:
// "by using the API or by sending an event"; Synapse does not do the latter).

import { stateKey, type RoomEvent, type StateKey } from '../../core/events.js';
import { actionsHighlight, actionsNotify } from '../../core/push/evaluator.js';
import { powerLevelsFromState } from '../../core/power-levels.js';
import type { Queryable } from '../../storage/database.js';
import type { NewPushAction, PushActionsStore, ThreadCountRow } from '../../storage/push-actions-store.js';
import { UNTHREADED, type ReceiptsStore } from '../../storage/receipts-store.js';
import type { EventCache, StoredEvent } from '../event-cache.js';
import type { EventSideEffects } from '../events-writer.js';
import type { UnreadCounts } from '../sync-sources.js';
import { isLocalUser } from './checks.js';
import type { PushRulesReader } from './push-rules.js';
import { MAIN_THREAD, threadOf } from './threads.js';

/** A room's unread counts: in total, in the main timeline, and per thread root. */
export interface RoomNotifications {
  total: UnreadCounts;
  main: UnreadCounts;
  threads: Map<string, UnreadCounts>;
}

export class PushActions {
  constructor(
    private readonly serverName: string,
    private readonly rules: PushRulesReader,
    private readonly store: PushActionsStore,
    private readonly receipts: ReceiptsStore,
    private readonly eventCache: EventCache,
  ) {}

  /** The events writer's side effect: notifications for the event, and the sender's read mark. */
  readonly sideEffect: EventSideEffects = async (tx, stored, stateBefore) => {
    const { event } = stored;
    const recipients = this.recipientsOf(event, stateBefore);
    const senderIsLocal = isLocalUser(event.sender, this.serverName);
    if (recipients.users.length === 0 && !senderIsLocal) return;
    let thread: Promise<string> | undefined;
    const threadOfEvent = () => (thread ??= threadOf(event, this.eventCache));
    if (recipients.users.length > 0) {
      const actions = await this.evaluate(tx, stored, stateBefore, recipients);
      if (actions.length > 0) {
        const threadId = await threadOfEvent();
        await this.store.insert(tx, actions.map((a) => ({ ...a, threadId })));
      }
    }
    if (senderIsLocal) await this.store.setOwnMark(tx, event.sender, event.roomId, await threadOfEvent(), stored.streamOrdering);
  };

  /** Local joined members other than the sender (and a local invitee), and the joined count. */
  private recipientsOf(event: RoomEvent, stateBefore: ReadonlyMap<StateKey, RoomEvent>): { users: string[]; joinedCount: number } {
    const users: string[] = [];
    let joinedCount = 0;
    for (const member of stateBefore.values()) {
      if (member.type !== 'm.room.member' || member.content.membership !== 'join' || member.stateKey === undefined) continue;
      joinedCount++;
      if (member.stateKey !== event.sender && isLocalUser(member.stateKey, this.serverName)) users.push(member.stateKey);
    }
    // An invitee is not in the room yet, but `.m.rule.invite_for_me` is for them (as Synapse).
    const target = event.stateKey;
    if (
      event.type === 'm.room.member' &&
      event.content.membership === 'invite' &&
      target !== undefined &&
      target !== event.sender &&
      isLocalUser(target, this.serverName) &&
      !users.includes(target)
    ) {
      users.push(target);
    }
    return { users, joinedCount };
  }

  private async evaluate(
    tx: Queryable,
    stored: StoredEvent,
    stateBefore: ReadonlyMap<StateKey, RoomEvent>,
    recipients: { users: string[]; joinedCount: number },
  ): Promise<Array<Omit<NewPushAction, 'threadId'>>> {
    const { event } = stored;
    const powerLevels = powerLevelsFromState(stateBefore, stored.roomVersion);
    const senderPowerLevel = powerLevels.userLevel(event.sender);
    const ruleSets = await this.rules.compiledFor(recipients.users, tx);
    const actions: Array<Omit<NewPushAction, 'threadId'>> = [];
    for (const userId of recipients.users) {
      const displayName = stateBefore.get(stateKey('m.room.member', userId))?.content.displayname;
      const result = ruleSets.get(userId)!.evaluate(event, {
        userId,
        userDisplayName: typeof displayName === 'string' ? displayName : undefined,
        roomMemberCount: recipients.joinedCount,
        powerLevels,
        senderPowerLevel,
      });
      if (!actionsNotify(result)) continue;
      actions.push({ roomId: event.roomId, userId, streamOrdering: stored.streamOrdering, eventId: event.eventId, highlight: actionsHighlight(result) });
    }
    return actions;
  }

  /** Unread notification and highlight counts per room, split by thread. */
  async unread(userId: string, roomIds: readonly string[]): Promise<Map<string, RoomNotifications>> {
    const marks = await this.readMarks(userId);
    const out = new Map<string, RoomNotifications>();
    for (const roomId of roomIds) {
      const room = marks.get(roomId);
      const unthreaded = room?.get(UNTHREADED) ?? 0;
      const result: RoomNotifications = { total: zero(), main: zero(), threads: new Map() };
      for (const row of await this.store.countsAfter(userId, roomId, unthreaded)) {
        const threaded = room?.get(row.thread_id) ?? 0;
        const counts = threaded > unthreaded ? await this.countAfter(userId, roomId, threaded, row.thread_id) : countsOf(row);
        if (counts.notification_count === 0) continue;
        add(result.total, counts);
        if (row.thread_id === MAIN_THREAD) add(result.main, counts);
        else result.threads.set(row.thread_id, counts);
      }
      out.set(roomId, result);
    }
    return out;
  }

  private async countAfter(userId: string, roomId: string, after: number, threadId: string): Promise<UnreadCounts> {
    const [row] = await this.store.countsAfter(userId, roomId, after, threadId);
    return row ? countsOf(row) : zero();
  }

  /** room → thread ('' for unthreaded) → the stream ordering read up to. */
  private async readMarks(userId: string): Promise<Map<string, Map<string, number>>> {
    const marks = new Map<string, Map<string, number>>();
    const raise = (roomId: string, threadId: string, position: number) => {
      let room = marks.get(roomId);
      if (!room) marks.set(roomId, (room = new Map()));
      room.set(threadId, Math.max(room.get(threadId) ?? 0, Number(position)));
    };
    for (const mark of await this.receipts.readMarks(userId)) raise(mark.room_id, mark.thread_id, mark.stream_ordering);
    for (const mark of await this.store.ownMarks(userId)) raise(mark.room_id, mark.thread_id, mark.stream_ordering);
    return marks;
  }
}

function zero(): UnreadCounts {
  return { notification_count: 0, highlight_count: 0 };
}

function countsOf(row: ThreadCountRow): UnreadCounts {
  return { notification_count: Number(row.notifs), highlight_count: Number(row.highlights) };
}

function add(into: UnreadCounts, counts: UnreadCounts): void {
  into.notification_count += counts.notification_count;
  into.highlight_count += counts.highlight_count;
}
