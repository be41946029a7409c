// Local room aliases (`room_aliases`): the only store that knows the table. The room directory's
// published flag lives on `rooms` (EventsStore.setRoomPublic / listPublicRooms).

import type { Database, Queryable } from './database.js';

export interface AliasRow {
  room_alias: string;
  room_id: string;
  creator: string;
}

export class DirectoryStore {
  constructor(private readonly db: Database) {}

  /**
   * Points `alias` at `roomId`; false if the alias already exists. `tx`: in a transaction of the
   * caller's (a new room's aliases commit with the room).
   */
  async createAlias(alias: string, roomId: string, creator: string, tx: Queryable = this.db): Promise<boolean> {
    const inserted = await tx.run('INSERT INTO room_aliases (room_alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [
      alias,
      roomId,
      creator,
    ]);
    return inserted.changes > 0;
  }

  /** The room a local alias points to. */
  async roomIdForAlias(alias: string): Promise<string | undefined> {
    const row = await this.db.get<{ room_id: string }>('SELECT room_id FROM room_aliases WHERE room_alias = ?', [alias]);
    return row?.room_id;
  }

  getAlias(alias: string): Promise<AliasRow | undefined> {
    return this.db.get<AliasRow>('SELECT room_alias, room_id, creator FROM room_aliases WHERE room_alias = ?', [alias]);
  }

  /** Removes the alias; returns the room it pointed to, or undefined if it did not exist. */
  deleteAlias(alias: string): Promise<string | undefined> {
    return this.db.transaction(async (tx) => {
      const row = await tx.get<{ room_id: string }>('SELECT room_id FROM room_aliases WHERE room_alias = ?', [alias]);
      if (row === undefined) return undefined;
      await tx.run('DELETE FROM room_aliases WHERE room_alias = ?', [alias]);
      return row.room_id;
    });
  }

  async aliasesOfRoom(roomId: string): Promise<string[]> {
    const rows = await this.db.all<{ room_alias: string }>('SELECT room_alias FROM room_aliases WHERE room_id = ? ORDER BY room_alias', [
      roomId,
    ]);
    return rows.map((r) => r.room_alias);
  }
}
