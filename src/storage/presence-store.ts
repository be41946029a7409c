// Presence: one row per user, at the presence stream position of its latest visible change.

import type { Database, Queryable } from './database.js';

export interface PresenceRow {
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number;
  last_user_sync_ts: number;
  currently_active: number;
  stream_id: number;
}

export class PresenceStore {
  constructor(private readonly db: Database) {}

  async maxStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM presence');
    return Number(row?.m ?? 0);
  }

  get(userId: string): Promise<PresenceRow | undefined> {
    return this.db.get<PresenceRow>('SELECT * FROM presence WHERE user_id = ?', [userId]);
  }

  async getMany(userIds: readonly string[]): Promise<PresenceRow[]> {
    const rows: PresenceRow[] = [];
    for (let i = 0; i < userIds.length; i += 100) {
      const chunk = userIds.slice(i, i + 100);
      rows.push(...(await this.db.all<PresenceRow>(`SELECT * FROM presence WHERE user_id IN (${chunk.map(() => '?').join(',')})`, chunk)));
    }
    return rows;
  }

  /** Users not offline, with when they last synced (to time them out after a restart). */
  notOffline(): Promise<Array<{ user_id: string; last_user_sync_ts: number; last_active_ts: number }>> {
    return this.db.all("SELECT user_id, last_user_sync_ts, last_active_ts FROM presence WHERE state <> 'offline'");
  }

  async put(tx: Queryable, row: PresenceRow): Promise<void> {
    await tx.run(
      `INSERT INTO presence (user_id, state, status_msg, last_active_ts, last_user_sync_ts, currently_active, stream_id)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
         last_active_ts = excluded.last_active_ts, last_user_sync_ts = excluded.last_user_sync_ts,
         currently_active = excluded.currently_active, stream_id = excluded.stream_id`,
      [row.user_id, row.state, row.status_msg, row.last_active_ts, row.last_user_sync_ts, row.currently_active, row.stream_id],
    );
  }

  /** Updates the activity times only: no visible change, so no new stream position. */
  async touch(userId: string, lastActiveTs: number, lastUserSyncTs: number): Promise<void> {
    await this.db.run('UPDATE presence SET last_active_ts = ?, last_user_sync_ts = ? WHERE user_id = ?', [
      lastActiveTs,
      lastUserSyncTs,
      userId,
    ]);
  }

  /** The users whose presence changed with `from < stream_id <= to`, in stream order (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ user_id: string }>> {
    return this.db.all('SELECT user_id FROM presence WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [from, to]);
  }

  changedBetween(from: number, to: number): Promise<PresenceRow[]> {
    return this.db.all<PresenceRow>('SELECT * FROM presence WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [from, to]);
  }
}
