// The user directory search (S:data/api/client-server/users.yaml): local users, matched by user id
// or display name, among the members of a given set of rooms. Membership and profiles are read
// where they live (`room_state`, `profiles`); there is no separate directory table to keep in step.

import type { Database } from './database.js';

export interface DirectoryUserRow {
  user_id: string;
  displayname: string | null;
  avatar_url: string | null;
}

export interface RoomStateContentRow {
  room_id: string;
  type: string;
  json: string;
}

/** Keeps IN lists short enough for statement caches and parameter limits. */
const CHUNK = 500;

export class UserDirectoryStore {
  constructor(private readonly db: Database) {}

  /**
   * Active local users joined to any of `roomIds` whose user id or display name contains `term`
   * (case-insensitive), best first: a match at the start of the display name or localpart, then
   * users with a display name, then with an avatar, then by user id. At most `limit` rows.
   */
  async search(roomIds: readonly string[], term: string, limit: number): Promise<DirectoryUserRow[]> {
    const pattern = `%${escapeLike(term.toLowerCase())}%`;
    const prefix = `${escapeLike(term.toLowerCase())}%`;
    const found = new Map<string, DirectoryUserRow & { rank: number }>();
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const chunk = roomIds.slice(i, i + CHUNK);
      const rows = await this.db.all<DirectoryUserRow & { rank: number }>(
        `SELECT u.user_id, p.displayname, p.avatar_url,
           CASE WHEN LOWER(p.displayname) LIKE ? ESCAPE '\\' OR LOWER(u.user_id) LIKE ? ESCAPE '\\' THEN 0 ELSE 1 END AS rank
         FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id
         WHERE u.deactivated = 0
           AND (LOWER(u.user_id) LIKE ? ESCAPE '\\' OR LOWER(p.displayname) LIKE ? ESCAPE '\\')
           AND EXISTS (
             SELECT 1 FROM room_state m
             WHERE m.type = 'm.room.member' AND m.state_key = u.user_id AND m.membership = 'join' AND m.to_stream IS NULL
               AND m.room_id IN (${chunk.map(() => '?').join(',')}))
         ORDER BY rank, p.displayname IS NULL, p.avatar_url IS NULL, u.user_id
         LIMIT ?`,
        [prefix, `@${prefix}`, pattern, pattern, ...chunk, limit],
      );
      for (const row of rows) found.set(row.user_id, row);
    }
    return [...found.values()]
      .sort(
        (a, b) =>
          Number(a.rank) - Number(b.rank) ||
          Number(a.displayname === null) - Number(b.displayname === null) ||
          Number(a.avatar_url === null) - Number(b.avatar_url === null) ||
          (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0),
      )
      .slice(0, limit)
      .map(({ user_id, displayname, avatar_url }) => ({ user_id, displayname, avatar_url }));
  }

  /**
   * The current `m.room.join_rules` and `m.room.history_visibility` events (as stored PDUs) of
   * every room, or of the rooms given: what decides whether a room's members are listed to all.
   */
  async directoryStateOf(roomIds?: readonly string[]): Promise<RoomStateContentRow[]> {
    const sql = `SELECT s.room_id, s.type, e.json FROM room_state s JOIN events e ON e.event_id = s.event_id
       WHERE s.to_stream IS NULL AND s.state_key = '' AND s.type IN ('m.room.join_rules', 'm.room.history_visibility')`;
    if (roomIds === undefined) return this.db.all<RoomStateContentRow>(sql);
    const rows: RoomStateContentRow[] = [];
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const chunk = roomIds.slice(i, i + CHUNK);
      rows.push(...(await this.db.all<RoomStateContentRow>(`${sql} AND s.room_id IN (${chunk.map(() => '?').join(',')})`, chunk)));
    }
    return rows;
  }
}

/** `%`, `_` and the escape character itself match literally. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
