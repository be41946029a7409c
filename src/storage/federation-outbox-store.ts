// To-device messages for other servers' users (schema 0052): one `m.direct_to_device` EDU per
// destination and send, waiting until the destination acknowledges the transaction carrying it.

import type { Database, Queryable } from './database.js';

export interface OutboxRow {
  streamId: number;
  destination: string;
  messageId: string;
  /** The EDU content (`sender`, `type`, `message_id`, `messages`) as JSON text. */
  eduJson: string;
}

export class FederationOutboxStore {
  constructor(private readonly db: Database) {}

  /** Written by the to-device writer, in the transaction that takes the message's position. */
  async insert(tx: Queryable, row: OutboxRow, now: number): Promise<void> {
    await tx.run(
      'INSERT INTO federation_to_device_outbox (stream_id, destination, message_id, edu_json, created_ts) VALUES (?, ?, ?, ?, ?)',
      [row.streamId, row.destination, row.messageId, row.eduJson, now],
    );
  }

  /** The destination's oldest waiting EDUs with `stream_id <= upTo`, at most `limit`. */
  async pending(destination: string, upTo: number, limit: number): Promise<OutboxRow[]> {
    const rows = await this.db.all<{ stream_id: number; destination: string; message_id: string; edu_json: string }>(
      `SELECT stream_id, destination, message_id, edu_json FROM federation_to_device_outbox
       WHERE destination = ? AND stream_id <= ? ORDER BY stream_id LIMIT ?`,
      [destination, upTo, limit],
    );
    return rows.map((r) => ({ streamId: Number(r.stream_id), destination: r.destination, messageId: r.message_id, eduJson: r.edu_json }));
  }

  /** Destinations with EDUs waiting (a restarted sender wakes them). */
  async destinations(): Promise<string[]> {
    const rows = await this.db.all<{ destination: string }>('SELECT DISTINCT destination FROM federation_to_device_outbox');
    return rows.map((r) => r.destination);
  }

  /** Drops what the destination acknowledged (or what can never be sent to it). */
  async deleteUpTo(tx: Queryable, destination: string, streamId: number): Promise<void> {
    await tx.run('DELETE FROM federation_to_device_outbox WHERE destination = ? AND stream_id <= ?', [destination, streamId]);
  }
}
