// Account data: per user, global (room '') or per room, one row per type, each moved to the
// account_data stream position of its latest change.

import type { Database, Queryable } from './database.js';

/** The room id under which global account data is stored. */
export const GLOBAL_ROOM = '';

export interface AccountDataRow {
  room_id: string;
  type: string;
  content: string;
  stream_id: number;
}

export class AccountDataStore {
  constructor(private readonly db: Database) {}

  async maxStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM account_data');
    return Number(row?.m ?? 0);
  }

  /** The content of one entry (`roomId` '' for global), as stored JSON text. */
  async get(userId: string, roomId: string, type: string, db: Queryable = this.db): Promise<string | undefined> {
    const row = await db.get<{ content: string }>('SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?', [
      userId,
      roomId,
      type,
    ]);
    return row?.content;
  }

  async put(tx: Queryable, userId: string, roomId: string, type: string, content: string, streamId: number): Promise<void> {
    await tx.run(
      `INSERT INTO account_data (user_id, room_id, type, content, stream_id) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id`,
      [userId, roomId, type, content, streamId],
    );
  }

  /** Every user's entries changed with `from < stream_id <= to`, in stream order (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ user_id: string; room_id: string; type: string }>> {
    return this.db.all('SELECT user_id, room_id, type FROM account_data WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [
      from,
      to,
    ]);
  }

  /** Entries changed with `from < stream_id <= to`. */
  changedBetween(userId: string, from: number, to: number): Promise<AccountDataRow[]> {
    return this.db.all<AccountDataRow>(
      `SELECT room_id, type, content, stream_id FROM account_data
       WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id`,
      [userId, from, to],
    );
  }
}
