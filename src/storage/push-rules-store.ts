// Push rules: per user, the user's own rules and changes to the server defaults as one JSON
// document (see src/core/push/ruleset.ts), at the push_rules stream position of its latest change.

import type { Database, Queryable } from './database.js';

export class PushRulesStore {
  constructor(private readonly db: Database) {}

  async maxStreamId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_id) AS m FROM push_rules');
    return Number(row?.m ?? 0);
  }

  /** The users whose rules changed with `from < stream_id <= to`, in stream order (catch-up). */
  streamChangesBetween(from: number, to: number): Promise<Array<{ user_id: string }>> {
    return this.db.all('SELECT user_id FROM push_rules WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id', [from, to]);
  }

  get(userId: string, db: Queryable = this.db): Promise<{ rules_json: string; stream_id: number } | undefined> {
    return db.get('SELECT rules_json, stream_id FROM push_rules WHERE user_id = ?', [userId]);
  }

  /** The stored documents of those of `userIds` who have one. */
  async getMany(userIds: readonly string[], db: Queryable = this.db): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < userIds.length; i += 100) {
      const chunk = userIds.slice(i, i + 100);
      const rows = await db.all<{ user_id: string; rules_json: string }>(
        `SELECT user_id, rules_json FROM push_rules WHERE user_id IN (${chunk.map(() => '?').join(',')})`,
        chunk,
      );
      for (const row of rows) found.set(row.user_id, row.rules_json);
    }
    return found;
  }

  async put(tx: Queryable, userId: string, rulesJson: string, streamId: number): Promise<void> {
    await tx.run(
      `INSERT INTO push_rules (user_id, rules_json, stream_id) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET rules_json = excluded.rules_json, stream_id = excluded.stream_id`,
      [userId, rulesJson, streamId],
    );
  }
}
