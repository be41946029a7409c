import type { Migration } from './migration.js';

// The other streams that may have several writers (`stream_writers.receipts` and
// `.device_lists` with more than one instance) take their positions from a shared sequence too,
// as the events stream does (0003). SQLite deployments run a single process.
export const streamSequences: Migration = {
  version: 41,
  name: 'receipts and device_lists stream sequences',
  sqlite: '',
  postgres: `CREATE SEQUENCE receipts_stream_seq MINVALUE 0 START WITH 1;
CREATE SEQUENCE device_lists_stream_seq MINVALUE 0 START WITH 1`,
};
