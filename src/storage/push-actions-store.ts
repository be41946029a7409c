// Notifications computed when an event is persisted (`event_push_actions`), the marks where a user
// has read up to by sending an event (`event_push_own_marks`), and the counts sync reports.

import type { Database, Queryable } from './database.js';

export interface NewPushAction {
  roomId: string;
  userId: string;
  streamOrdering: number;
  eventId: string;
  threadId: string;
  highlight: boolean;
}

export interface ThreadCountRow {
  thread_id: string;
  notifs: number;
  highlights: number;
}

/** Rows per multi-row INSERT: 6 parameters each keeps statements far below every parameter limit. */
const INSERT_BATCH = 200;

export class PushActionsStore {
  constructor(private readonly db: Database) {}

  /** Inserts notifying actions (each notifies; `highlight` as computed). */
  async insert(tx: Queryable, actions: readonly NewPushAction[]): Promise<void> {
    for (let i = 0; i < actions.length; i += INSERT_BATCH) {
      const batch = actions.slice(i, i + INSERT_BATCH);
      const params: Array<string | number> = [];
      for (const a of batch) params.push(a.roomId, a.userId, a.streamOrdering, a.eventId, a.threadId, a.highlight ? 1 : 0);
      await tx.run(
        `INSERT INTO event_push_actions (room_id, user_id, stream_ordering, event_id, thread_id, notif, highlight)
         VALUES ${batch.map(() => '(?, ?, ?, ?, ?, 1, ?)').join(', ')} ON CONFLICT DO NOTHING`,
        params,
      );
    }
  }

  async setOwnMark(tx: Queryable, userId: string, roomId: string, threadId: string, streamOrdering: number): Promise<void> {
    await tx.run(
      `INSERT INTO event_push_own_marks (user_id, room_id, thread_id, stream_ordering) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_ordering = excluded.stream_ordering`,
      [userId, roomId, threadId, streamOrdering],
    );
  }

  ownMarks(userId: string): Promise<Array<{ room_id: string; thread_id: string; stream_ordering: number }>> {
    return this.db.all('SELECT room_id, thread_id, stream_ordering FROM event_push_own_marks WHERE user_id = ?', [userId]);
  }

  /** Notifying and highlighting actions after `after` in a room, per thread (all threads, or one). */
  countsAfter(userId: string, roomId: string, after: number, threadId?: string): Promise<ThreadCountRow[]> {
    const threadClause = threadId === undefined ? '' : ' AND thread_id = ?';
    const params: Array<string | number> = [userId, roomId, after];
    if (threadId !== undefined) params.push(threadId);
    return this.db.all<ThreadCountRow>(
      `SELECT thread_id, COUNT(*) AS notifs, COALESCE(SUM(highlight), 0) AS highlights FROM event_push_actions
       WHERE user_id = ? AND room_id = ? AND stream_ordering > ? AND notif = 1${threadClause} GROUP BY thread_id`,
      params,
    );
  }
}
