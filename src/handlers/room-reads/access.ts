// Who is reading a room, and which of its events they may see.
//
// Synapse's `check_user_in_room_or_world_readable` (Syn:synapse/api/auth/base.py) decides whether a
// user may read a room at all, and with what standing:
//   - joined now: the room as it is;
//   - left (kicked, or left themselves) and not forgotten: the room as it was when they left;
//   - anyone else, if the room is world_readable now: a peek at the room as it is;
//   - otherwise 403 M_FORBIDDEN. An unknown room gives the same 403, so a room's existence does
//     not leak (Complement's TestFetchMessagesFromNonExistentRoom expects 403 from /messages).
// Invited, knocking and banned users are "anyone else". Single-event reads (/event, /context) skip
// this gate and judge each event's visibility alone, as Synapse does.
//
// Each event is then judged by the history-visibility rule (core.visibility) with the scope:
//   - `lastJoin`: the spec's "the user joined at any point after the event" for `shared` history
//     holds exactly for events before the user's last join. Infinite while joined (every earlier
//     event qualifies); for a departed user, their last join before leaving (none for someone who
//     only ever declined an invite); none for peekers (Synapse's `is_peeking`). With it, the rule
//     alone already hides from a departed user what was written after they left, unless it was
//     world-readable at the time (SyTest SPEC-216).
//   - `upTo`: a departed user's leave, where their reading stops: /messages walks no further in
//     either direction, /context does not reach past it, and state is as it was then. Synapse
//     clamps backwards pagination the same way. When the room is world-readable now, there is no
//     such stop: the user may read on like anyone else, the rule still hiding what was not
//     world-readable when it was written.

import type { VisibleEvent } from '../../core/visibility.js';
import { effectiveHistoryVisibility } from '../../core/visibility.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { StoredEvent } from '../kernel/event-cache.js';

export type ReadStanding = 'joined' | 'departed' | 'peeking';

export interface ReadScope {
  readonly standing: ReadStanding;
  readonly currentMembership: string | undefined;
  /** Events strictly before this position count as "joined since" (see the module comment). */
  readonly lastJoin: number;
  /** The last position the user may read (their leave); `undefined`: no limit. */
  readonly upTo: number | undefined;
}

export class RoomAccess {
  constructor(private readonly core: CoreParts<'roomState' | 'memberships' | 'visibility'>) {}

  /**
   * The scope of a user who may read the room, or 403 M_FORBIDDEN. `allowDeparted: false` refuses
   * users who have left (for endpoints about the room as it is now), unless anyone may peek.
   */
  async requireReader(roomId: string, userId: string, options: { allowDeparted: boolean }): Promise<ReadScope> {
    const scope = await this.scopeOf(roomId, userId);
    if (scope.standing === 'joined') return scope;
    if (scope.standing === 'departed' && options.allowDeparted) return scope;
    if (await this.isWorldReadable(roomId)) return peeking(scope.currentMembership);
    throw Errors.forbidden(`User ${userId} not in room ${roomId}, and room previews are disabled`);
  }

  /** The user's scope, never refusing: for single events, whose own visibility decides. */
  async scopeOf(roomId: string, userId: string): Promise<ReadScope> {
    if (!(await this.core.roomState.roomExists(roomId))) return peeking(undefined);
    const member = await this.core.roomState.storedMemberRow(roomId, userId);
    const membership = member?.membership ?? undefined;
    if (membership === 'join') return { standing: 'joined', currentMembership: 'join', lastJoin: Infinity, upTo: undefined };
    if (membership === 'leave' && member !== undefined && !(await this.core.memberships.forgottenRooms(userId)).has(roomId)) {
      const leftAt = Number(member.from_stream);
      const joins = (await this.core.memberships.changesBetween(userId, -1, leftAt)).filter(
        (change) => change.room_id === roomId && change.membership === 'join',
      );
      const lastJoin = joins.length === 0 ? -Infinity : Math.max(...joins.map((change) => Number(change.from_stream)));
      const upTo = (await this.isWorldReadable(roomId)) ? undefined : leftAt;
      return { standing: 'departed', currentMembership: 'leave', lastJoin, upTo };
    }
    return peeking(membership);
  }

  async isWorldReadable(roomId: string): Promise<boolean> {
    if (!(await this.core.roomState.roomExists(roomId))) return false;
    const event = await this.core.roomState.currentStateEvent(roomId, 'm.room.history_visibility', '');
    return effectiveHistoryVisibility(event?.event.content.history_visibility) === 'world_readable';
  }

  /** The events of `events` (one room, walking order) that the scope lets the user see, order kept. */
  async visibleEvents(
    roomId: string,
    userId: string,
    scope: ReadScope,
    events: readonly StoredEvent[],
  ): Promise<VisibleEvent<StoredEvent>[]> {
    const inScope = scope.upTo === undefined ? events : events.filter((e) => e.streamOrdering <= scope.upTo!);
    const sinceJoin = inScope.filter((e) => e.streamOrdering < scope.lastJoin);
    const afterJoin = inScope.filter((e) => e.streamOrdering >= scope.lastJoin);
    const judge = (batch: readonly StoredEvent[], joinedSinceEvent: boolean) =>
      this.core.visibility.filter(userId, roomId, batch, { currentMembership: scope.currentMembership, joinedSinceEvent });
    const [before, after] = await Promise.all([judge(sinceJoin, true), judge(afterJoin, false)]);
    if (before.length === 0 || after.length === 0) return before.length === 0 ? after : before;
    const order = new Map(inScope.map((e, i) => [e.event.eventId, i]));
    return [...before, ...after].sort((a, b) => order.get(a.event.event.eventId)! - order.get(b.event.event.eventId)!);
  }

  /**
   * Whether the user could see an ordinary message at the position of `at` (an event of the room):
   * the test for reading the room's state as it was there (/members?at=, Synapse's
   * `_user_can_see_state_at_event`).
   */
  async canSeeStateAt(roomId: string, userId: string, scope: ReadScope, at: StoredEvent): Promise<boolean> {
    const probe: StoredEvent = { ...at, event: { ...at.event, type: 'm.room.message', stateKey: undefined, sender: '', content: {} } };
    return (await this.visibleEvents(roomId, userId, scope, [probe])).length > 0;
  }
}

function peeking(currentMembership: string | undefined): ReadScope {
  return { standing: 'peeking', currentMembership, lastJoin: -Infinity, upTo: undefined };
}
