// Notifications: which local users an event notifies or highlights, computed when the event is
// persisted (so counts change in the same /sync as the event, push.md §Server behaviour), and the
// unread counts /sync reports.
//
// The side effect runs inside the events writer's transaction for every event, once per local
// member, so it is kept to plain loops: the recipients and context come from the state before the
// event (already in memory), rule sets are compiled once per user and cached until the user's rules
// change, and per-event work (looked-up values, the body's words) is shared by all users inside the
// evaluator. What is stored is the outcome most members got, once per event, plus a row per member
// whose outcome differs (schema 0020 says why).
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
import type { PushActionsStore, ThreadCountRow } from '../../storage/push-actions-store.js';
import { UNTHREADED, type ReceiptsStore } from '../../storage/receipts-store.js';
import type { ReplicationBus } from '../../streams/bus.js';
import { BusInvalidatedCache } from '../kernel/bus-cache.js';
import type { EventCache, StoredEvent } from '../kernel/event-cache.js';
import type { EventSideEffects } from '../kernel/events-writer.js';
import type { UserMemberships } from '../kernel/memberships.js';
import type { RoomNotifications, UnreadCounts } from '../sync/sync-sources.js';
import { isLocalUser } from './checks.js';
import type { PushRulesReader } from './push-rules.js';
import { MAIN_THREAD, threadOf } from './threads.js';

export type { RoomNotifications } from '../sync/sync-sources.js';

interface Recipients {
  users: string[];
  /** Joined members, for `room_member_count`. */
  joinedCount: number;
  /** The local user an invite event invites (among `users`, but not joined). */
  invitee: string | undefined;
}

interface Outcome {
  userId: string;
  notify: boolean;
  highlight: boolean;
  joined: boolean;
}

function outcomeKey(outcome: Pick<Outcome, 'notify' | 'highlight'>): string {
  return outcome.notify ? (outcome.highlight ? 'highlight' : 'notify') : 'none';
}

export class PushActions {
  /**
   * Each user's read marks (receipts and own events), kept between syncs: every /sync that reports
   * a room asks for its counts. Dropped when the user sends a receipt or an event.
   */
  private readonly marks: BusInvalidatedCache<Map<string, Map<string, number>>>;

  constructor(
    private readonly serverName: string,
    private readonly rules: PushRulesReader,
    private readonly store: PushActionsStore,
    private readonly receipts: ReceiptsStore,
    private readonly memberships: UserMemberships,
    private readonly eventCache: EventCache,
    bus: ReplicationBus,
  ) {
    this.marks = new BusInvalidatedCache(
      bus,
      100_000,
      (row) => (row.stream === 'receipts' ? [row.userId] : row.stream === 'events' ? [row.sender] : []),
      (userId) => this.readMarks(userId),
    );
  }

  /** The events writer's side effect: notifications for the event, and the sender's read mark. */
  readonly sideEffect: EventSideEffects = async (tx, stored, stateBefore) => {
    const { event } = stored;
    const recipients = this.recipientsOf(event, stateBefore);
    const senderIsLocal = isLocalUser(event.sender, this.serverName);
    if (recipients.users.length === 0 && !senderIsLocal) return;
    let thread: Promise<string> | undefined;
    const threadOfEvent = () => (thread ??= threadOf(event, this.eventCache));
    if (recipients.users.length > 0) await this.record(tx, stored, await this.evaluate(tx, stored, stateBefore, recipients), threadOfEvent);
    if (senderIsLocal) await this.store.setOwnMark(tx, event.sender, event.roomId, await threadOfEvent(), stored.streamOrdering);
  };

  /** Local joined members other than the sender (and a local invitee), and the joined count. */
  private recipientsOf(event: RoomEvent, stateBefore: ReadonlyMap<StateKey, RoomEvent>): Recipients {
    const users: string[] = [];
    let joinedCount = 0;
    for (const member of stateBefore.values()) {
      if (member.type !== 'm.room.member' || member.content.membership !== 'join' || member.stateKey === undefined) continue;
      joinedCount++;
      if (member.stateKey !== event.sender && isLocalUser(member.stateKey, this.serverName)) users.push(member.stateKey);
    }
    // An invitee is not in the room yet, but `.m.rule.invite_for_me` is for them (as Synapse).
    const target = event.stateKey;
    let invitee: string | undefined;
    if (
      event.type === 'm.room.member' &&
      event.content.membership === 'invite' &&
      target !== undefined &&
      target !== event.sender &&
      isLocalUser(target, this.serverName) &&
      !users.includes(target)
    ) {
      invitee = target;
    }
    return { users: invitee === undefined ? users : [...users, invitee], joinedCount, invitee };
  }

  private async evaluate(
    tx: Queryable,
    stored: StoredEvent,
    stateBefore: ReadonlyMap<StateKey, RoomEvent>,
    recipients: Recipients,
  ): Promise<Outcome[]> {
    const { event } = stored;
    const powerLevels = powerLevelsFromState(stateBefore, stored.roomVersion);
    const senderPowerLevel = powerLevels.userLevel(event.sender);
    const ruleSets = await this.rules.compiledFor(recipients.users, tx);
    return recipients.users.map((userId) => {
      const displayName = stateBefore.get(stateKey('m.room.member', userId))?.content.displayname;
      const actions = ruleSets.get(userId)!.evaluate(event, {
        userId,
        userDisplayName: typeof displayName === 'string' ? displayName : undefined,
        roomMemberCount: recipients.joinedCount,
        powerLevels,
        senderPowerLevel,
      });
      const notify = actionsNotify(actions);
      return { userId, notify, highlight: notify && actionsHighlight(actions), joined: userId !== recipients.invitee };
    });
  }

  /**
   * Stores the outcome most joined members got once for the room (when it notifies), and a row for
   * each member whose outcome differs (see schema 0020).
   */
  private async record(
    tx: Queryable,
    stored: StoredEvent,
    outcomes: readonly Outcome[],
    threadOfEvent: () => Promise<string>,
  ): Promise<void> {
    const { event, streamOrdering } = stored;
    const tally = new Map<string, number>();
    for (const o of outcomes) if (o.joined) tally.set(outcomeKey(o), (tally.get(outcomeKey(o)) ?? 0) + 1);
    let common: string | undefined;
    for (const [key, count] of tally) if (common === undefined || count > tally.get(common)!) common = key;
    const roomWide = common !== undefined && common !== outcomeKey({ notify: false, highlight: false }) ? common : undefined;
    const exceptions = outcomes.filter((o) => (roomWide !== undefined && o.joined ? outcomeKey(o) !== roomWide : o.notify));
    if (roomWide === undefined && exceptions.length === 0) return;
    const threadId = await threadOfEvent();
    if (roomWide !== undefined) {
      await this.store.insertRoomAction(tx, {
        roomId: event.roomId,
        streamOrdering,
        eventId: event.eventId,
        sender: event.sender,
        threadId,
        highlight: roomWide === outcomeKey({ notify: true, highlight: true }),
      });
    }
    await this.store.insert(
      tx,
      exceptions.map((o) => ({
        roomId: event.roomId,
        userId: o.userId,
        streamOrdering,
        eventId: event.eventId,
        threadId,
        notify: o.notify,
        highlight: o.highlight,
      })),
    );
  }

  /** Unread notification and highlight counts per room, split by thread. */
  async unread(userId: string, roomIds: readonly string[]): Promise<Map<string, RoomNotifications>> {
    const marks = await this.marks.get(userId);
    // Room-wide outcomes concern members joined at the event: nothing before the user's current
    // join counts (Synapse also counts from the join when there is no receipt), and in a room the
    // user is not joined to only their own outcomes (an invite) count.
    const joinedAt = new Map<string, number>();
    for (const m of await this.memberships.of(userId)) if (m.membership === 'join') joinedAt.set(m.room_id, Number(m.from_stream));
    const out = new Map<string, RoomNotifications>();
    for (const roomId of roomIds) {
      const room = marks.get(roomId);
      const joined = joinedAt.get(roomId);
      const member = joined !== undefined;
      const floor = Math.max(room?.get(UNTHREADED) ?? 0, joined ?? 0);
      const result: RoomNotifications = { total: zero(), main: zero(), threads: new Map() };
      for (const row of await this.store.countsAfter(userId, roomId, floor, { member })) {
        const threaded = room?.get(row.thread_id) ?? 0;
        const counts = threaded > floor ? await this.countAfter(userId, roomId, threaded, row.thread_id, member) : countsOf(row);
        if (counts.notification_count === 0) continue;
        add(result.total, counts);
        if (row.thread_id === MAIN_THREAD) add(result.main, counts);
        else result.threads.set(row.thread_id, counts);
      }
      out.set(roomId, result);
    }
    return out;
  }

  private async countAfter(userId: string, roomId: string, after: number, threadId: string, member: boolean): Promise<UnreadCounts> {
    const [row] = await this.store.countsAfter(userId, roomId, after, { threadId, member });
    return row ? countsOf(row) : zero();
  }

  /** room → thread ('' for unthreaded) → the stream ordering read up to. */
  private async readMarks(userId: string): Promise<Map<string, Map<string, number>>> {
    const marks = new Map<string, Map<string, number>>();
    const raise = (roomId: string, threadId: string, position: number) => {
      let room = marks.get(roomId);
      if (!room) marks.set(roomId, (room = new Map<string, number>()));
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
