// The `summary` block of a joined room in /sync (S:data/api/client-server/sync.yaml
// `m.heroes`, `m.joined_member_count`, `m.invited_member_count`; facts from
// Syn:synapse/handlers/sync.py `compute_summary` and
// Syn:synapse/storage/databases/main/roommember.py `extract_heroes_from_room_summary`).
//
// Heroes: never the user themselves; the joined members in stream order, then the invited ones in
// stream order, at most 5. Only when there are no joined or invited members besides the user do
// the left members (stream order) and then the banned ones fill in. Knocking members are never
// heroes. The spec's wording ("the first 5 members … ordered by stream ordering, which are joined
// or invited") could also be read as one list merged by stream order; we follow Synapse, which
// puts all joined members before invited ones, so room names match what clients see on Synapse.
//
// Heroes are left out when the room has a non-empty `m.room.name` or a non-empty
// `m.room.canonical_alias` `alias` (Synapse; the spec only requires them when both are unset or
// empty). `hasRoomName` / `hasCanonicalAlias` make that call from the state contents. When
// heroes are sent they are sent even if empty.
//
// "May be omitted when unchanged since the last sync" is the caller's business: this always
// computes the full block.

import type { JsonObject } from './json.js';

/** The most heroes we return (sync.yaml: "the first 5 members"). */
export const MAX_HEROES = 5;

export interface SummaryMember {
  readonly userId: string;
  /** The membership in the room's current state: `join`, `invite`, `leave`, `ban`, `knock`. */
  readonly membership: string;
  /** Stream position of the member's current `m.room.member` event (orders the heroes). */
  readonly streamPos: number;
}

export interface RoomSummary {
  'm.heroes'?: string[];
  'm.joined_member_count': number;
  'm.invited_member_count': number;
}

/** A non-empty `name` in the content of `m.room.name`. */
export function hasRoomName(nameContent: JsonObject | undefined): boolean {
  const name = nameContent?.name;
  return typeof name === 'string' && name !== '';
}

/** A non-empty `alias` in the content of `m.room.canonical_alias` (`alt_aliases` do not count). */
export function hasCanonicalAlias(aliasContent: JsonObject | undefined): boolean {
  const alias = aliasContent?.alias;
  return typeof alias === 'string' && alias !== '';
}

function byStream(a: SummaryMember, b: SummaryMember): number {
  return a.streamPos - b.streamPos || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);
}

/** The heroes of a room for `selfUserId` (see the module comment for the order). */
export function computeHeroes(members: Iterable<SummaryMember>, selfUserId: string): string[] {
  const joined: SummaryMember[] = [];
  const invited: SummaryMember[] = [];
  const left: SummaryMember[] = [];
  const banned: SummaryMember[] = [];
  for (const member of members) {
    if (member.userId === selfUserId) continue;
    switch (member.membership) {
      case 'join':
        joined.push(member);
        break;
      case 'invite':
        invited.push(member);
        break;
      case 'leave':
        left.push(member);
        break;
      case 'ban':
        banned.push(member);
        break;
    }
  }
  const pick =
    joined.length + invited.length > 0
      ? [...joined.sort(byStream), ...invited.sort(byStream)]
      : [...left.sort(byStream), ...banned.sort(byStream)];
  return pick.slice(0, MAX_HEROES).map((m) => m.userId);
}

/**
 * The summary block. `members` is the room's current membership (one entry per user);
 * `hasName`/`hasAlias` say whether the room has a non-empty name / canonical alias (see
 * `hasRoomName`, `hasCanonicalAlias`).
 */
export function computeRoomSummary(members: Iterable<SummaryMember>, selfUserId: string, hasName: boolean, hasAlias: boolean): RoomSummary {
  const list = Array.isArray(members) ? (members as readonly SummaryMember[]) : [...members];
  let joinedCount = 0;
  let invitedCount = 0;
  for (const member of list) {
    if (member.membership === 'join') joinedCount++;
    else if (member.membership === 'invite') invitedCount++;
  }
  const summary: RoomSummary = {
    'm.joined_member_count': joinedCount,
    'm.invited_member_count': invitedCount,
  };
  if (!hasName && !hasAlias) summary['m.heroes'] = computeHeroes(list, selfUserId);
  return summary;
}
