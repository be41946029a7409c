// Filters a user uploaded (`POST /user/{userId}/filter`), by per-user integer id. Filters never
// change once stored.

import type { Database } from './database.js';

export class FiltersStore {
  constructor(private readonly db: Database) {}

  /** Stores the filter under the user's next id (0 for the first). */
  async add(userId: string, filterJson: string): Promise<number> {
    // Two processes may pick the same next id; the primary key refuses the second, which retries.
    for (let attempt = 0; ; attempt++) {
      const row = await this.db.get<{ m: number | null }>('SELECT MAX(filter_id) AS m FROM user_filters WHERE user_id = ?', [userId]);
      const id = row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
      const inserted = await this.db.run(
        'INSERT INTO user_filters (user_id, filter_id, filter_json) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        [userId, id, filterJson],
      );
      if (inserted.changes > 0) return id;
      if (attempt >= 10) throw new Error(`could not allocate a filter id for ${userId}`);
    }
  }

  async get(userId: string, filterId: number): Promise<string | undefined> {
    const row = await this.db.get<{ filter_json: string }>('SELECT filter_json FROM user_filters WHERE user_id = ? AND filter_id = ?', [
      userId,
      filterId,
    ]);
    return row?.filter_json;
  }
}
