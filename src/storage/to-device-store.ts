// To-device messages: each waits in its device's inbox, at its own to_device stream position, until
// the device's next sync acknowledges it. Sends are deduplicated per (sender, device, txn id).

import type { Database, Queryable } from './database.js';

export const TO_DEVICE_STREAM = 'to_device';

export class ToDeviceStore {
  constructor(private readonly db: Database) {}

  /**
   * The highest position handed out: the inbox's rows are deleted once delivered, so the stream's
   * high-water mark is also kept in `stream_positions`.
   */
  async maxStreamId(instanceName: string): Promise<number> {
    const inbox = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM to_device_inbox');
    const mark = await this.db.get<{ position: number }>(
      'SELECT position FROM stream_positions WHERE stream_name = ? AND instance_name = ?',
      [TO_DEVICE_STREAM, instanceName],
    );
    return Math.max(Number(inbox?.m ?? 0), Number(mark?.position ?? 0));
  }

  /** The highest position of a message still waiting in an inbox (catch-up at start-up). */
  async maxInboxStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM to_device_inbox');
    return Number(row?.m ?? 0);
  }

  /** The devices with messages waiting at `from < stream_id <= to`, in stream order (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ user_id: string; device_id: string }>> {
    return this.db.all('SELECT user_id, device_id FROM to_device_inbox WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [
      from,
      to,
    ]);
  }

  /** Records the transaction; false if the sender's device already used this txn id. */
  async claimTxn(tx: Queryable, userId: string, deviceId: string, txnId: string, now: number): Promise<boolean> {
    const inserted = await tx.run(
      'INSERT INTO to_device_txn_ids (user_id, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [userId, deviceId, txnId, now],
    );
    return inserted.changes > 0;
  }

  async txnSeen(userId: string, deviceId: string, txnId: string): Promise<boolean> {
    const row = await this.db.get('SELECT 1 AS seen FROM to_device_txn_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?', [
      userId,
      deviceId,
      txnId,
    ]);
    return row !== undefined;
  }

  async insert(tx: Queryable, streamId: number, userId: string, deviceId: string, messageJson: string): Promise<void> {
    await tx.run('INSERT INTO to_device_inbox (stream_id, user_id, device_id, message_json) VALUES (?, ?, ?, ?)', [
      streamId,
      userId,
      deviceId,
      messageJson,
    ]);
  }

  async recordPosition(tx: Queryable, instanceName: string, position: number): Promise<void> {
    await tx.run(
      `INSERT INTO stream_positions (stream_name, instance_name, position) VALUES (?, ?, ?)
       ON CONFLICT (stream_name, instance_name) DO UPDATE SET
         position = CASE WHEN stream_positions.position < excluded.position THEN excluded.position ELSE stream_positions.position END`,
      [TO_DEVICE_STREAM, instanceName, position],
    );
  }

  /** The device's messages with `from < stream_id <= to`, oldest first, at most `limit`. */
  pending(
    userId: string,
    deviceId: string,
    from: number,
    to: number,
    limit: number,
  ): Promise<Array<{ stream_id: number; message_json: string }>> {
    return this.db.all(
      `SELECT stream_id, message_json FROM to_device_inbox
       WHERE user_id = ? AND device_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?`,
      [userId, deviceId, from, to, limit],
    );
  }

  async deleteUpTo(userId: string, deviceId: string, position: number): Promise<void> {
    await this.db.run('DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?', [userId, deviceId, position]);
  }
}
