import type { Migration } from './migration.js';

// With several events writers (worker mode, PostgreSQL), positions in the events stream come from
// one sequence, so they are unique and increase across writers. SQLite deployments run a single
// process, whose writer counts in memory.
export const eventsSequence: Migration = {
  version: 3,
  name: 'events stream sequence',
  sqlite: '',
  postgres: 'CREATE SEQUENCE events_stream_seq MINVALUE 0 START WITH 1',
};
