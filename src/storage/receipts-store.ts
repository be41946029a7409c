// Read receipts: the latest receipt per (room, type, user, thread), at the receipts stream position
// of its latest change. Unthreaded receipts are stored with thread '' (the column is part of the
// primary key, so it cannot be NULL).

import type { Database, Queryable } from './database.js';

export const UNTHREADED = '';

export interface ReceiptRow {
  room_id: string;
  receipt_type: string;
  user_id: string;
  thread_id: string;
  event_id: string;
  event_stream_ordering: number;
  data: string;
  stream_id: number;
}

/** Where a user has read up to in a room, by thread ('' for unthreaded receipts). */
export interface ReadMarkRow {
  room_id: string;
  thread_id: string;
  stream_ordering: number;
}

export class ReceiptsStore {
  constructor(private readonly db: Database) {}

  async maxStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM receipts');
    return Number(row?.m ?? 0);
  }

  /** The stream ordering of the event the receipt points at now, if there is one. */
  async currentEventOrdering(
    roomId: string,
    receiptType: string,
    userId: string,
    threadId: string,
    tx: Queryable = this.db,
  ): Promise<number | undefined> {
    const row = await tx.get<{ o: number }>(
      'SELECT event_stream_ordering AS o FROM receipts WHERE room_id = ? AND receipt_type = ? AND user_id = ? AND thread_id = ?',
      [roomId, receiptType, userId, threadId],
    );
    return row === undefined ? undefined : Number(row.o);
  }

  async put(tx: Queryable, row: ReceiptRow): Promise<void> {
    await tx.run(
      `INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering, data, stream_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET
         event_id = excluded.event_id, event_stream_ordering = excluded.event_stream_ordering,
         data = excluded.data, stream_id = excluded.stream_id`,
      [row.room_id, row.receipt_type, row.user_id, row.thread_id, row.event_id, row.event_stream_ordering, row.data, row.stream_id],
    );
  }

  /** Receipts in the rooms changed with `from < stream_id <= to`. */
  async changedBetween(roomIds: readonly string[], from: number, to: number): Promise<ReceiptRow[]> {
    const rows: ReceiptRow[] = [];
    for (let i = 0; i < roomIds.length; i += 100) {
      const chunk = roomIds.slice(i, i + 100);
      rows.push(
        ...(await this.db.all<ReceiptRow>(
          `SELECT * FROM receipts
           WHERE room_id IN (${chunk.map(() => '?').join(',')}) AND stream_id > ? AND stream_id <= ? ORDER BY stream_id`,
          [...chunk, from, to],
        )),
      );
    }
    return rows;
  }

  /** Who changed a receipt in which room with `from < stream_id <= to`, in stream order (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ room_id: string; user_id: string }>> {
    return this.db.all('SELECT room_id, user_id FROM receipts WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [from, to]);
  }

  /** The user's read receipts (public and private) in every room, the furthest per thread. */
  readMarks(userId: string): Promise<ReadMarkRow[]> {
    return this.db.all<ReadMarkRow>(
      `SELECT room_id, thread_id, MAX(event_stream_ordering) AS stream_ordering FROM receipts
       WHERE user_id = ? AND receipt_type IN ('m.read', 'm.read.private') GROUP BY room_id, thread_id`,
      [userId],
    );
  }
}
