// Server-side backups of encrypted room keys (schema 0040): versions, and the keys stored in each.

import type { Database, Queryable } from './database.js';

export interface BackupVersionRow {
  version: number;
  algorithm: string;
  auth_data: string;
  etag: number;
  deleted: number;
}

export interface RoomKeyRow {
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data: string;
}

export interface RoomKeyData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  /** The algorithm-dependent (encrypted) data, as JSON. */
  session_data: string;
}

/** The WHERE clause selecting a backup's keys, or one room's, or one session's. */
function keysOf(userId: string, version: number, roomId?: string, sessionId?: string): { where: string; params: Array<string | number> } {
  const conditions = ['user_id = ?', 'version = ?'];
  const params: Array<string | number> = [userId, version];
  if (roomId !== undefined) {
    conditions.push('room_id = ?');
    params.push(roomId);
  }
  if (sessionId !== undefined) {
    conditions.push('session_id = ?');
    params.push(sessionId);
  }
  return { where: conditions.join(' AND '), params };
}

export class KeyBackupStore {
  constructor(private readonly db: Database) {}

  /** The user's newest backup that is not deleted: the only one keys may be written to. */
  current(userId: string, tx: Queryable = this.db): Promise<BackupVersionRow | undefined> {
    return tx.get<BackupVersionRow>(
      `SELECT version, algorithm, auth_data, etag, deleted FROM e2e_room_keys_versions
       WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1`,
      [userId],
    );
  }

  /** A backup version, deleted or not. */
  version(userId: string, version: number, tx: Queryable = this.db): Promise<BackupVersionRow | undefined> {
    return tx.get<BackupVersionRow>(
      'SELECT version, algorithm, auth_data, etag, deleted FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?',
      [userId, version],
    );
  }

  /**
   * Creates the next version (numbers are never reused, even after a deletion). Two processes
   * creating a version for one user at once may pick the same number: the loser's insert does
   * nothing and it tries the next one.
   */
  async create(userId: string, algorithm: string, authData: string): Promise<number> {
    for (;;) {
      const row = await this.db.get<{ version: number }>(
        `INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data, etag, deleted)
         SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, 0, 0 FROM e2e_room_keys_versions WHERE user_id = ?
         ON CONFLICT DO NOTHING RETURNING version`,
        [userId, algorithm, authData, userId],
      );
      if (row) return Number(row.version);
    }
  }

  async setAuthData(userId: string, version: number, authData: string): Promise<void> {
    await this.db.run('UPDATE e2e_room_keys_versions SET auth_data = ? WHERE user_id = ? AND version = ?', [authData, userId, version]);
  }

  /** Marks the version deleted and drops its keys. */
  async delete(userId: string, version: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run('DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?', [userId, version]);
      await tx.run('UPDATE e2e_room_keys_versions SET deleted = 1 WHERE user_id = ? AND version = ?', [userId, version]);
    });
  }

  async bumpEtag(tx: Queryable, userId: string, version: number): Promise<number> {
    await tx.run('UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?', [userId, version]);
    const row = await tx.get<{ etag: number }>('SELECT etag FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?', [
      userId,
      version,
    ]);
    return Number(row?.etag ?? 0);
  }

  async count(userId: string, version: number, tx: Queryable = this.db): Promise<number> {
    const row = await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM e2e_room_keys WHERE user_id = ? AND version = ?', [userId, version]);
    return Number(row?.n ?? 0);
  }

  /** Stored keys, optionally of one room or one session. */
  keys(userId: string, version: number, roomId?: string, sessionId?: string, tx: Queryable = this.db): Promise<RoomKeyRow[]> {
    const { where, params } = keysOf(userId, version, roomId, sessionId);
    return tx.all<RoomKeyRow>(
      `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data FROM e2e_room_keys WHERE ${where}`,
      params,
    );
  }

  /**
   * Stores the key unless the stored copy of the session's key is at least as good, in one
   * statement, so that uploads racing from several processes cannot let a worse key win. Better
   * is the spec's order: verified first, then the lower first message index, then fewer forwards.
   * Returns whether the key was stored.
   */
  async putKeyIfBetter(
    tx: Queryable,
    userId: string,
    version: number,
    roomId: string,
    sessionId: string,
    key: RoomKeyData,
  ): Promise<boolean> {
    const result = await tx.run(
      `INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
         forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data
       WHERE excluded.is_verified > e2e_room_keys.is_verified
         OR (excluded.is_verified = e2e_room_keys.is_verified
           AND (excluded.first_message_index < e2e_room_keys.first_message_index
             OR (excluded.first_message_index = e2e_room_keys.first_message_index
               AND excluded.forwarded_count < e2e_room_keys.forwarded_count)))`,
      [userId, version, roomId, sessionId, key.first_message_index, key.forwarded_count, key.is_verified ? 1 : 0, key.session_data],
    );
    return result.changes > 0;
  }

  /** Deletes keys (of one room or session when given); returns how many. */
  async deleteKeys(tx: Queryable, userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
    const { where, params } = keysOf(userId, version, roomId, sessionId);
    return (await tx.run(`DELETE FROM e2e_room_keys WHERE ${where}`, params)).changes;
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }
}
