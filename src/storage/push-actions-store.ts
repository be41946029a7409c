// Notifications computed when an event is persisted: the outcome most local members get, once per
// event (`event_push_room_actions`), and the members whose outcome differs (`event_push_actions`;
// see schema 0020). Also the marks where a user has read up to by sending an event
// (`event_push_own_marks`), and the counts sync reports.

import type { Database, Queryable } from './database.js';

/** The outcome for one member, when it differs from the event's room-wide one (or there is none). */
export interface NewPushAction {
  roomId: string;
  userId: string;
  streamOrdering: number;
  eventId: string;
  threadId: string;
  notify: boolean;
  highlight: boolean;
}

/** The outcome of every other local member joined at the event, except the sender. */
export interface NewRoomPushAction {
  roomId: string;
  streamOrdering: number;
  eventId: string;
  sender: string;
  threadId: string;
  highlight: boolean;
}

export interface ThreadCountRow {
  thread_id: string;
  notifs: number;
  highlights: number;
}

/** Rows per multi-row INSERT: 7 parameters each keeps statements far below every parameter limit. */
const INSERT_BATCH = 200;

export class PushActionsStore {
  constructor(private readonly db: Database) {}

  async insertRoomAction(tx: Queryable, action: NewRoomPushAction): Promise<void> {
    await tx.run(
      `INSERT INTO event_push_room_actions (room_id, stream_ordering, event_id, sender, thread_id, highlight)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [action.roomId, action.streamOrdering, action.eventId, action.sender, action.threadId, action.highlight ? 1 : 0],
    );
  }

  async insert(tx: Queryable, actions: readonly NewPushAction[]): Promise<void> {
    for (let i = 0; i < actions.length; i += INSERT_BATCH) {
      const batch = actions.slice(i, i + INSERT_BATCH);
      const params: Array<string | number> = [];
      for (const a of batch)
        params.push(a.roomId, a.userId, a.streamOrdering, a.eventId, a.threadId, a.notify ? 1 : 0, a.highlight ? 1 : 0);
      await tx.run(
        `INSERT INTO event_push_actions (room_id, user_id, stream_ordering, event_id, thread_id, notif, highlight)
         VALUES ${batch.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')} ON CONFLICT DO NOTHING`,
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

  /**
   * The user's notifications and highlights in a room after `after`, per thread (all threads, or
   * one): the user's own notifying outcomes, plus (for a member of the room) the room-wide
   * outcomes of others' events where the user has no outcome of their own.
   */
  countsAfter(userId: string, roomId: string, after: number, options: { threadId?: string; member: boolean }): Promise<ThreadCountRow[]> {
    const { threadId, member } = options;
    const oneThread = threadId === undefined ? '' : ' AND thread_id = ?';
    const thread = threadId === undefined ? [] : [threadId];
    const own = `SELECT thread_id, highlight FROM event_push_actions
      WHERE user_id = ? AND room_id = ? AND stream_ordering > ? AND notif = 1${oneThread}`;
    const ownParams = [userId, roomId, after, ...thread];
    if (!member)
      return this.db.all<ThreadCountRow>(
        `SELECT thread_id, COUNT(*) AS notifs, SUM(highlight) AS highlights FROM (${own}) AS counted GROUP BY thread_id`,
        ownParams,
      );
    return this.db.all<ThreadCountRow>(
      `SELECT thread_id, COUNT(*) AS notifs, SUM(highlight) AS highlights FROM (
         SELECT r.thread_id, r.highlight FROM event_push_room_actions r
         WHERE r.room_id = ? AND r.stream_ordering > ? AND r.sender <> ?${oneThread.replace('thread_id', 'r.thread_id')}
           AND NOT EXISTS (
             SELECT 1 FROM event_push_actions e WHERE e.user_id = ? AND e.room_id = r.room_id AND e.stream_ordering = r.stream_ordering
           )
         UNION ALL
         ${own}
       ) AS counted GROUP BY thread_id`,
      [roomId, after, userId, ...thread, userId, ...ownParams],
    );
  }
}
