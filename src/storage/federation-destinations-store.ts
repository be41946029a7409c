// What the federation sender remembers per destination and per sender instance (schema 0052):
// acknowledged positions, retry state, and how far each sender has read the events stream.

import type { Database, Queryable } from './database.js';

export interface DestinationRow {
  destination: string;
  /** Everything of the events stream at or below this that the destination should get was acknowledged. */
  lastAckedEvents: number;
  /** The same for the receipts stream (`m.receipt`). */
  receiptsPosition: number;
  /** The same for the device_lists stream (`m.device_list_update`, `m.signing_key_update`). */
  deviceListsPosition: number;
  /** When the current outage began; undefined while the destination answers. */
  failureTs: number | undefined;
  /** When we last tried and failed (0: never, or reset). */
  retryLastTs: number;
  /** How long to wait after `retryLastTs` before trying again (0: not backing off). */
  retryIntervalMs: number;
  lastSuccessTs: number | undefined;
}

interface DbRow {
  destination: string;
  last_acked_events: number;
  receipts_position: number;
  device_lists_position: number;
  failure_ts: number | null;
  retry_last_ts: number;
  retry_interval_ms: number;
  last_success_ts: number | null;
}

function fromDb(row: DbRow): DestinationRow {
  return {
    destination: row.destination,
    lastAckedEvents: Number(row.last_acked_events),
    receiptsPosition: Number(row.receipts_position),
    deviceListsPosition: Number(row.device_lists_position),
    failureTs: row.failure_ts === null ? undefined : Number(row.failure_ts),
    retryLastTs: Number(row.retry_last_ts),
    retryIntervalMs: Number(row.retry_interval_ms),
    lastSuccessTs: row.last_success_ts === null ? undefined : Number(row.last_success_ts),
  };
}

/** The positions a transaction's acknowledgement moves a destination to. */
export interface AcknowledgedPositions {
  lastAckedEvents: number;
  receiptsPosition: number;
  deviceListsPosition: number;
}

export interface RetryTimings {
  failureTs: number | undefined;
  retryLastTs: number;
  retryIntervalMs: number;
}

const COLUMNS =
  'destination, last_acked_events, receipts_position, device_lists_position, failure_ts, retry_last_ts, retry_interval_ms, last_success_ts';

export class FederationDestinationsStore {
  constructor(private readonly db: Database) {}

  async all(): Promise<DestinationRow[]> {
    return (await this.db.all<DbRow>(`SELECT ${COLUMNS} FROM federation_destinations`)).map(fromDb);
  }

  async get(destination: string): Promise<DestinationRow | undefined> {
    const row = await this.db.get<DbRow>(`SELECT ${COLUMNS} FROM federation_destinations WHERE destination = ?`, [destination]);
    return row ? fromDb(row) : undefined;
  }

  /**
   * Creates the rows of destinations not seen before, starting at the given positions (nothing at
   * or below them is owed to the destination). Existing rows are left as they are. Returns the
   * destinations whose rows were created.
   */
  async ensure(rows: ReadonlyArray<{ destination: string } & AcknowledgedPositions>): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    return this.db.transaction(async (tx) => {
      // Returned as a new set each run: a transaction may run twice (see `Database.transaction`).
      const inserted = new Set<string>();
      for (const row of rows) {
        const result = await tx.run(
          `INSERT INTO federation_destinations (destination, last_acked_events, receipts_position, device_lists_position)
           VALUES (?, ?, ?, ?) ON CONFLICT (destination) DO NOTHING`,
          [row.destination, row.lastAckedEvents, row.receiptsPosition, row.deviceListsPosition],
        );
        if (result.changes > 0) inserted.add(row.destination);
      }
      return inserted;
    });
  }

  /**
   * Records an acknowledged transaction (or positions found to owe the destination nothing):
   * positions only move forward, and the destination is marked up.
   */
  async acknowledge(tx: Queryable, destination: string, positions: AcknowledgedPositions, now: number): Promise<void> {
    await tx.run(
      `UPDATE federation_destinations SET
         last_acked_events = CASE WHEN last_acked_events < ? THEN ? ELSE last_acked_events END,
         receipts_position = CASE WHEN receipts_position < ? THEN ? ELSE receipts_position END,
         device_lists_position = CASE WHEN device_lists_position < ? THEN ? ELSE device_lists_position END,
         failure_ts = NULL, retry_last_ts = 0, retry_interval_ms = 0, last_success_ts = ?
       WHERE destination = ?`,
      [
        positions.lastAckedEvents,
        positions.lastAckedEvents,
        positions.receiptsPosition,
        positions.receiptsPosition,
        positions.deviceListsPosition,
        positions.deviceListsPosition,
        now,
        destination,
      ],
    );
  }

  /** Moves positions forward without touching the retry state (nothing was owed in between). */
  async advance(destination: string, positions: AcknowledgedPositions): Promise<void> {
    await this.db.run(
      `UPDATE federation_destinations SET
         last_acked_events = CASE WHEN last_acked_events < ? THEN ? ELSE last_acked_events END,
         receipts_position = CASE WHEN receipts_position < ? THEN ? ELSE receipts_position END,
         device_lists_position = CASE WHEN device_lists_position < ? THEN ? ELSE device_lists_position END
       WHERE destination = ?`,
      [
        positions.lastAckedEvents,
        positions.lastAckedEvents,
        positions.receiptsPosition,
        positions.receiptsPosition,
        positions.deviceListsPosition,
        positions.deviceListsPosition,
        destination,
      ],
    );
  }

  async setRetryTimings(destination: string, timings: RetryTimings): Promise<void> {
    await this.db.run('UPDATE federation_destinations SET failure_ts = ?, retry_last_ts = ?, retry_interval_ms = ? WHERE destination = ?', [
      timings.failureTs ?? null,
      timings.retryLastTs,
      timings.retryIntervalMs,
      destination,
    ]);
  }

  /** The retry state of one destination (for the inbound side's "it is up again" check). */
  async retryTimings(destination: string): Promise<RetryTimings | undefined> {
    const row = await this.db.get<{ failure_ts: number | null; retry_last_ts: number; retry_interval_ms: number }>(
      'SELECT failure_ts, retry_last_ts, retry_interval_ms FROM federation_destinations WHERE destination = ?',
      [destination],
    );
    if (!row) return undefined;
    return {
      failureTs: row.failure_ts === null ? undefined : Number(row.failure_ts),
      retryLastTs: Number(row.retry_last_ts),
      retryIntervalMs: Number(row.retry_interval_ms),
    };
  }

  // ---- how far each sender instance has read a stream ----

  /** How far each sender instance has read `stream`. */
  async senderPositions(stream: string): Promise<Map<string, number>> {
    const rows = await this.db.all<{ instance_name: string; position: number }>(
      'SELECT instance_name, position FROM federation_sender_positions WHERE stream_name = ?',
      [stream],
    );
    return new Map(rows.map((r) => [r.instance_name, Number(r.position)]));
  }

  async setSenderPosition(instanceName: string, stream: string, position: number): Promise<void> {
    await this.db.run(
      `INSERT INTO federation_sender_positions (instance_name, stream_name, position) VALUES (?, ?, ?)
       ON CONFLICT (instance_name, stream_name) DO UPDATE SET
         position = CASE WHEN federation_sender_positions.position < excluded.position
           THEN excluded.position ELSE federation_sender_positions.position END`,
      [instanceName, stream, position],
    );
  }
}
