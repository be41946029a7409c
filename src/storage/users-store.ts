// Accounts, profiles, devices, access tokens and user-interactive-auth sessions.

import { inBatches, placeholders } from './batches.js';
import type { Database, Queryable } from './database.js';

export interface UserRow {
  user_id: string;
  password_hash: string | null;
  is_admin: number;
  is_guest: number;
  deactivated: number;
  user_type: string | null;
  created_ts: number;
}

export interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  last_seen_user_agent: string | null;
  created_ts: number;
}

export interface TokenOwner {
  user_id: string;
  device_id: string;
  is_guest: number;
  deactivated: number;
}

export interface ProfileRow {
  displayname: string | null;
  avatar_url: string | null;
}

export interface UiAuthSessionRow {
  session_id: string;
  method: string;
  uri: string;
  body_json: string;
  completed_json: string;
  user_id: string | null;
  created_ts: number;
  /** Server-side session data the client never sees (password hashes, the registered user). */
  server_data_json: string;
}

export class UsersStore {
  constructor(private readonly db: Database) {}

  async createUser(
    user: {
      userId: string;
      passwordHash: string | null;
      isAdmin?: boolean;
      isGuest?: boolean;
      userType?: string | null;
      displayname?: string | null;
    },
    now: number,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const inserted = await tx.run(
        `INSERT INTO users (user_id, password_hash, is_admin, is_guest, deactivated, user_type, created_ts)
         VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (user_id) DO NOTHING`,
        [user.userId, user.passwordHash, user.isAdmin ? 1 : 0, user.isGuest ? 1 : 0, user.userType ?? null, now],
      );
      if (inserted.changes === 0) return false;
      await tx.run('INSERT INTO profiles (user_id, displayname, avatar_url) VALUES (?, ?, NULL)', [user.userId, user.displayname ?? null]);
      return true;
    });
  }

  getUser(userId: string): Promise<UserRow | undefined> {
    return this.db.get<UserRow>('SELECT * FROM users WHERE user_id = ?', [userId]);
  }

  /** Case-insensitive lookup: Synapse treats user ids that differ only in case as the same user. */
  findUserIgnoringCase(userId: string): Promise<UserRow | undefined> {
    return this.db.get<UserRow>('SELECT * FROM users WHERE LOWER(user_id) = LOWER(?) ORDER BY user_id LIMIT 1', [userId]);
  }

  /** Every user whose id equals `userId` ignoring case (older servers allowed several). */
  findUsersIgnoringCase(userId: string): Promise<UserRow[]> {
    return this.db.all<UserRow>('SELECT * FROM users WHERE LOWER(user_id) = LOWER(?) ORDER BY user_id', [userId]);
  }

  async isAdmin(userId: string): Promise<boolean> {
    const row = await this.db.get<{ is_admin: number }>('SELECT is_admin FROM users WHERE user_id = ?', [userId]);
    return row?.is_admin === 1;
  }

  async setPasswordHash(userId: string, hash: string | null): Promise<void> {
    await this.db.run('UPDATE users SET password_hash = ? WHERE user_id = ?', [hash, userId]);
  }

  async setDeactivated(userId: string): Promise<void> {
    await this.db.run('UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?', [userId]);
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    await this.db.run('UPDATE users SET is_admin = ? WHERE user_id = ?', [admin ? 1 : 0, userId]);
  }

  async countUsers(): Promise<number> {
    const row = await this.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM users');
    return Number(row?.n ?? 0);
  }

  getProfile(userId: string): Promise<ProfileRow | undefined> {
    return this.db.get<ProfileRow>('SELECT displayname, avatar_url FROM profiles WHERE user_id = ?', [userId]);
  }

  async setProfileField(userId: string, field: 'displayname' | 'avatar_url', value: string | null): Promise<void> {
    // The column name comes from the typed argument, never from input.
    await this.db.run(`UPDATE profiles SET ${field} = ? WHERE user_id = ?`, [value, userId]);
  }

  /** Creates the device, or keeps it (and its name) if it exists. Returns whether it was new. */
  async upsertDevice(userId: string, deviceId: string, displayName: string | null, now: number, tx: Queryable = this.db): Promise<boolean> {
    const inserted = await tx.run(
      `INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, device_id) DO NOTHING`,
      [userId, deviceId, displayName, now],
    );
    return inserted.changes > 0;
  }

  getDevice(userId: string, deviceId: string): Promise<DeviceRow | undefined> {
    return this.db.get<DeviceRow>('SELECT * FROM devices WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
  }

  listDevices(userId: string): Promise<DeviceRow[]> {
    return this.db.all<DeviceRow>('SELECT * FROM devices WHERE user_id = ? ORDER BY created_ts, device_id', [userId]);
  }

  async setDeviceDisplayName(userId: string, deviceId: string, name: string | null): Promise<boolean> {
    const result = await this.db.run('UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?', [name, userId, deviceId]);
    return result.changes > 0;
  }

  async recordDeviceSeen(userId: string, deviceId: string, now: number, ip: string, userAgent: string | null): Promise<void> {
    await this.db.run(
      'UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = ? WHERE user_id = ? AND device_id = ?',
      [now, ip, userAgent, userId, deviceId],
    );
  }

  /**
   * Deletes devices and every access token they hold; returns the token hashes removed. `alsoDo`
   * runs in the same transaction, for rows other areas keep per device (keys, device lists).
   */
  async deleteDevices(
    userId: string,
    deviceIds: readonly string[],
    alsoDo?: (tx: Queryable, userId: string, deviceIds: readonly string[]) => Promise<void>,
  ): Promise<string[]> {
    if (deviceIds.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const removed: string[] = [];
      for (const deviceId of deviceIds) {
        const tokens = await tx.all<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE user_id = ? AND device_id = ?', [
          userId,
          deviceId,
        ]);
        removed.push(...tokens.map((t) => t.token_hash));
        await tx.run('DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
        await tx.run('DELETE FROM devices WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
      }
      await alsoDo?.(tx, userId, deviceIds);
      return removed;
    });
  }

  /**
   * The devices among `deviceIds` that still exist, read in the caller's transaction. On PostgreSQL
   * this waits for a transaction that is deleting one of them to finish (a row lock), so the answer
   * is what it committed.
   */
  async existingDevices(userId: string, deviceIds: readonly string[], tx: Queryable = this.db): Promise<Set<string>> {
    const existing = new Set<string>();
    const lock = this.db.dialect === 'postgres' ? ' FOR UPDATE' : '';
    for (const batch of inBatches(deviceIds)) {
      const rows = await tx.all<{ device_id: string }>(
        `SELECT device_id FROM devices WHERE user_id = ? AND device_id IN (${placeholders(batch.length)})${lock}`,
        [userId, ...batch],
      );
      for (const row of rows) existing.add(row.device_id);
    }
    return existing;
  }

  async addAccessToken(tokenHash: string, userId: string, deviceId: string, now: number, tx: Queryable = this.db): Promise<void> {
    await tx.run('INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)', [
      tokenHash,
      userId,
      deviceId,
      now,
    ]);
  }

  getTokenOwner(tokenHash: string): Promise<TokenOwner | undefined> {
    return this.db.get<TokenOwner>(
      `SELECT t.user_id, t.device_id, u.is_guest, u.deactivated
       FROM access_tokens t JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = ?`,
      [tokenHash],
    );
  }

  async deleteAccessToken(tokenHash: string): Promise<void> {
    await this.db.run('DELETE FROM access_tokens WHERE token_hash = ?', [tokenHash]);
  }

  /** Removes every token of a user except `keep`; returns the hashes removed. */
  async deleteAccessTokensOfUser(userId: string, keep?: string): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.all<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE user_id = ?', [userId]);
      const removed = rows.map((r) => r.token_hash).filter((h) => h !== keep);
      for (const hash of removed) await tx.run('DELETE FROM access_tokens WHERE token_hash = ?', [hash]);
      return removed;
    });
  }

  async createUiAuthSession(row: UiAuthSessionRow): Promise<void> {
    await this.db.run(
      `INSERT INTO ui_auth_sessions (session_id, method, uri, body_json, completed_json, user_id, created_ts, server_data_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [row.session_id, row.method, row.uri, row.body_json, row.completed_json, row.user_id, row.created_ts, row.server_data_json],
    );
  }

  async setUiAuthSessionBody(sessionId: string, bodyJson: string): Promise<void> {
    await this.db.run('UPDATE ui_auth_sessions SET body_json = ? WHERE session_id = ?', [bodyJson, sessionId]);
  }

  async setUiAuthSessionServerData(sessionId: string, serverDataJson: string): Promise<void> {
    await this.db.run('UPDATE ui_auth_sessions SET server_data_json = ? WHERE session_id = ?', [serverDataJson, sessionId]);
  }

  getUiAuthSession(sessionId: string): Promise<UiAuthSessionRow | undefined> {
    return this.db.get<UiAuthSessionRow>('SELECT * FROM ui_auth_sessions WHERE session_id = ?', [sessionId]);
  }

  async updateUiAuthSession(sessionId: string, completedJson: string): Promise<void> {
    await this.db.run('UPDATE ui_auth_sessions SET completed_json = ? WHERE session_id = ?', [completedJson, sessionId]);
  }

  async deleteUiAuthSession(sessionId: string): Promise<void> {
    await this.db.run('DELETE FROM ui_auth_sessions WHERE session_id = ?', [sessionId]);
  }

  async deleteUiAuthSessionsBefore(ts: number): Promise<void> {
    await this.db.run('DELETE FROM ui_auth_sessions WHERE created_ts < ?', [ts]);
  }
}
