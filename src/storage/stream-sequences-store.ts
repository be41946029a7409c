// The PostgreSQL sequences the streams with several writers draw their positions from
// (`events_stream_seq`, schema 0003; `receipts_stream_seq` and `device_lists_stream_seq`, schema
// 0041). SQLite deployments run one process, whose writers count in memory.

import type { MultiWriterStream } from '../streams/id-generator.js';
import type { Database } from './database.js';

const SEQUENCES: Record<MultiWriterStream, string> = {
  events: 'events_stream_seq',
  receipts: 'receipts_stream_seq',
  device_lists: 'device_lists_stream_seq',
};

export class StreamSequencesStore {
  constructor(private readonly db: Database) {}

  /**
   * Moves the stream's sequence up to at least `atLeast` (never down), so no position at or below
   * one already used is handed out (e.g. rows written before the switch to several writers), and
   * returns where it stands. Several writers need PostgreSQL: on SQLite this throws.
   */
  async raiseTo(stream: MultiWriterStream, atLeast: number): Promise<number> {
    const sequence = this.sequenceOf(stream);
    const row = await this.db.get<{ v: number }>(`SELECT setval('${sequence}', GREATEST((SELECT last_value FROM ${sequence}), ?)) AS v`, [
      atLeast,
    ]);
    return Number(row!.v);
  }

  /** The stream's next position from its sequence. */
  async next(stream: MultiWriterStream): Promise<number> {
    const sequence = this.sequenceOf(stream);
    return Number((await this.db.get<{ v: number }>(`SELECT nextval('${sequence}') AS v`))!.v);
  }

  private sequenceOf(stream: MultiWriterStream): string {
    if (this.db.dialect !== 'postgres') throw new Error(`several ${stream} writers need PostgreSQL`);
    return SEQUENCES[stream];
  }
}
