// State groups (schema 0051): the state after events of a room's graph, stored as skip-deltas
// (see the schema and handlers/kernel/state-groups.ts).

import type { Database, Queryable, SqlValue } from './database.js';

export interface StateGroupRow {
  id: number;
  room_id: string;
  prev_group: number | null;
  seq: number;
  delta_depth: number;
}

export interface StateGroupEntryRow {
  state_group: number;
  type: string;
  state_key: string;
  /** NULL: the key is removed from the state of `prev_group`. */
  event_id: string | null;
}

export interface NewStateGroup {
  id: number;
  roomId: string;
  prevGroup: number | null;
  seq: number;
  deltaDepth: number;
  entries: ReadonlyArray<readonly [type: string, stateKey: string, eventId: string | null]>;
}

/** Entries per INSERT statement (4 parameters each, well under SQLite's 32,766). */
const ENTRIES_PER_INSERT = 500;

function toGroupRow(row: StateGroupRow): StateGroupRow {
  return {
    id: Number(row.id),
    room_id: row.room_id,
    prev_group: row.prev_group === null ? null : Number(row.prev_group),
    seq: Number(row.seq),
    delta_depth: Number(row.delta_depth),
  };
}

export class StateGroupsStore {
  constructor(private readonly db: Database) {}

  async insert(tx: Queryable, group: NewStateGroup): Promise<void> {
    await tx.run('INSERT INTO state_groups (id, room_id, prev_group, seq, delta_depth) VALUES (?, ?, ?, ?, ?)', [
      group.id,
      group.roomId,
      group.prevGroup,
      group.seq,
      group.deltaDepth,
    ]);
    for (let i = 0; i < group.entries.length; i += ENTRIES_PER_INSERT) {
      const chunk = group.entries.slice(i, i + ENTRIES_PER_INSERT);
      const params: SqlValue[] = [];
      for (const [type, stateKey, eventId] of chunk) params.push(group.id, type, stateKey, eventId);
      await tx.run(
        `INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`,
        params,
      );
    }
  }

  /** The group and its ancestors through `prev_group` (its delta chain), with their entries. */
  async loadChain(id: number): Promise<{ groups: StateGroupRow[]; entries: StateGroupEntryRow[] }> {
    const groups = (
      await this.db.all<StateGroupRow>(
        `WITH RECURSIVE chain(id) AS (
           SELECT CAST(? AS BIGINT)
           UNION ALL
           SELECT g.prev_group FROM state_groups g JOIN chain c ON g.id = c.id WHERE g.prev_group IS NOT NULL
         )
         SELECT g.id, g.room_id, g.prev_group, g.seq, g.delta_depth FROM state_groups g JOIN chain c ON g.id = c.id`,
        [id],
      )
    ).map(toGroupRow);
    if (groups.length === 0) return { groups, entries: [] };
    const entries = await this.db.all<StateGroupEntryRow>(
      `SELECT state_group, type, state_key, event_id FROM state_group_entries WHERE state_group IN (${groups.map(() => '?').join(',')})`,
      groups.map((g) => g.id),
    );
    return { groups, entries: entries.map((e) => ({ ...e, state_group: Number(e.state_group) })) };
  }

  /** The highest group id in use (SQLite allocates from it; PostgreSQL uses a sequence). */
  async maxId(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(id) AS m FROM state_groups');
    return Number(row?.m ?? 0);
  }

  /**
   * PostgreSQL: reserves a block of group ids from `state_group_id_seq`, which counts in steps of
   * 100, so every events writer draws whole blocks and ids never collide.
   */
  async reserveIdBlock(): Promise<{ first: number; count: number }> {
    const row = await this.db.get<{ v: number }>("SELECT nextval('state_group_id_seq') AS v");
    return { first: Number(row!.v), count: 100 };
  }

  /** Groups and entries of a room (tests: storage grows with state changes). */
  async countForRoom(roomId: string): Promise<{ groups: number; entries: number }> {
    const groups = await this.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM state_groups WHERE room_id = ?', [roomId]);
    const entries = await this.db.get<{ n: number }>(
      'SELECT COUNT(*) AS n FROM state_group_entries e JOIN state_groups g ON g.id = e.state_group WHERE g.room_id = ?',
      [roomId],
    );
    return { groups: Number(groups?.n ?? 0), entries: Number(entries?.n ?? 0) };
  }
}
