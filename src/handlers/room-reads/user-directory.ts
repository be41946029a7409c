// The user directory search (S:data/api/client-server/users.yaml; Synapse's default
// `search_all_users: false`): a user finds the local users who share a room with them, and
// everyone joined to a room that is public to all (join rule `public`, or world-readable
// history). Like Synapse, a user finds themself only through such a public room: sharing a
// private room with oneself does not count.
//
// Which rooms are public to all is kept in memory per process. It is built from the database on
// the first search, and a room is looked at again after the events stream reports a change to its
// join rules or history visibility — from the replication bus, so every process hears of changes
// made by any writer.

import { MAX_IDENTIFIER_BYTES } from '../../core/identifiers.js';
import { isJsonObject } from '../../core/json.js';
import { effectiveHistoryVisibility } from '../../core/visibility.js';
import type { UserDirectoryStore, RoomStateContentRow } from '../../storage/user-directory-store.js';
import type { CoreParts } from '../kernel/core.js';
import { MAX_DISPLAYNAME_LENGTH } from './profiles.js';

export interface UserDirectoryResult {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

export interface UserDirectoryApi {
  /** POST /user_directory/search */
  search(userId: string, term: string, limit: number): Promise<{ limited: boolean; results: UserDirectoryResult[] }>;
}

/** Synapse clamps `limit` to [0, 50]. */
export const MAX_USER_DIRECTORY_LIMIT = 50;
/**
 * The longest term that can match anything: a term is found inside a display name (at most
 * `MAX_DISPLAYNAME_LENGTH` characters) or a user id (at most 255 bytes), so a longer one matches
 * nobody. Such a term is answered without a query (a pattern of tens of thousands of characters
 * is more than SQLite's LIKE accepts).
 */
export const MAX_MATCHABLE_TERM_LENGTH = Math.max(MAX_DISPLAYNAME_LENGTH, MAX_IDENTIFIER_BYTES);
const DIRECTORY_STATE_TYPES = new Set(['m.room.join_rules', 'm.room.history_visibility']);

export class UserDirectory implements UserDirectoryApi {
  private publicRooms: Set<string> | undefined;
  private readonly changed = new Set<string>();

  constructor(
    private readonly core: CoreParts<'bus' | 'roomState'>,
    private readonly store: UserDirectoryStore,
  ) {
    core.bus.subscribe((update) => {
      for (const row of update.rows) {
        if (row.stream !== 'events') continue;
        if (
          (row.stateKey === '' && DIRECTORY_STATE_TYPES.has(row.type)) ||
          row.stateDelta?.some((d) => d.stateKey === '' && DIRECTORY_STATE_TYPES.has(d.type))
        ) {
          this.changed.add(row.roomId);
        }
      }
    });
  }

  async search(userId: string, term: string, limit: number): Promise<{ limited: boolean; results: UserDirectoryResult[] }> {
    if (term.length > MAX_MATCHABLE_TERM_LENGTH) return { limited: false, results: [] };
    const publicRooms = await this.currentPublicRooms();
    const ownRooms = await this.core.roomState.roomsOf(userId, ['join']);
    const rooms = new Set([...publicRooms, ...ownRooms]);
    const inPublicRoom = ownRooms.some((roomId) => publicRooms.has(roomId));
    const rows = (await this.store.search([...rooms], term, limit + 2)).filter((row) => row.user_id !== userId || inPublicRoom);
    const results = rows.slice(0, limit).map((row) => {
      const result: UserDirectoryResult = { user_id: row.user_id };
      if (row.displayname !== null) result.display_name = row.displayname;
      if (row.avatar_url !== null) result.avatar_url = row.avatar_url;
      return result;
    });
    return { limited: rows.length > limit, results };
  }

  private async currentPublicRooms(): Promise<Set<string>> {
    if (this.publicRooms === undefined) {
      // Changes seen while building are re-read afterwards, so none is lost to the race.
      this.changed.clear();
      this.publicRooms = publicRoomsIn(await this.store.directoryStateOf());
    }
    if (this.changed.size > 0) {
      const rooms = [...this.changed];
      this.changed.clear();
      const nowPublic = publicRoomsIn(await this.store.directoryStateOf(rooms));
      for (const roomId of rooms) {
        if (nowPublic.has(roomId)) this.publicRooms.add(roomId);
        else this.publicRooms.delete(roomId);
      }
    }
    return this.publicRooms;
  }
}

function publicRoomsIn(rows: readonly RoomStateContentRow[]): Set<string> {
  const rooms = new Set<string>();
  for (const row of rows) {
    const pdu: unknown = JSON.parse(row.json);
    const content = isJsonObject(pdu) && isJsonObject(pdu.content) ? pdu.content : {};
    const isPublic =
      row.type === 'm.room.join_rules'
        ? content.join_rule === 'public'
        : effectiveHistoryVisibility(content.history_visibility) === 'world_readable';
    if (isPublic) rooms.add(row.room_id);
  }
  return rooms;
}
