// Positions for a stream with several writers: a shared PostgreSQL sequence, each writer's own
// completed position, and idle writers moving on with the others.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { InMemoryBus, type StreamUpdate } from '../../src/streams/bus.js';
import { PostgresDatabase } from '../../src/storage/postgres.js';
import { SequenceIdGenerator } from '../../src/streams/id-generator.js';
import { StreamPositionTracker } from '../../src/streams/positions.js';
import { StreamPublisher } from '../../src/streams/stream-writer.js';
import { testPostgres } from '../harness/postgres.js';

const opened: PostgresDatabase[] = [];
after(async () => {
  await Promise.all(opened.map((db) => db.close()));
});

async function sequence(): Promise<() => Promise<number>> {
  const server = await testPostgres();
  const db = new PostgresDatabase({ host: server.socketDir, user: server.user, database: await server.createDatabase() });
  opened.push(db);
  await db.exec('CREATE SEQUENCE s');
  return async () => Number((await db.get<{ v: number }>("SELECT nextval('s') AS v"))!.v);
}

test('two writers on one sequence: readers never pass a position still being written', async () => {
  const next = await sequence();
  const bus = new InMemoryBus();
  const a = new StreamPublisher('events', new SequenceIdGenerator(next, 0), bus, 'a');
  const b = new StreamPublisher('events', new SequenceIdGenerator(next, 0), bus, 'b');
  const tracker = new StreamPositionTracker(() => ['a', 'b']);
  const seen: StreamUpdate[] = [];
  bus.subscribe((u) => {
    tracker.observe(u.stream, u.instance, u.position);
    seen.push(u);
  });
  const row = (n: number) => [{ stream: 'events' as const, roomId: `!r${n}:x`, eventId: `$${n}`, type: 't', sender: '@u:x' }];

  // a takes position 1 and is slow to commit; b takes 2 and commits at once.
  const slow = await a.reserve(1);
  assert.equal(slow.positions[0], 1);
  await b.write(1, async ([p]) => ({ value: p, rows: row(2) }));
  assert.equal(tracker.of('events', 'b'), 2);
  assert.equal(tracker.current('events'), 0, 'a still writes position 1: nothing is safe to read');
  slow.complete(row(1));
  // a is now idle and has seen b at 2, so it reports 2 too: readers may read up to 2.
  assert.equal(tracker.current('events'), 2);

  // An idle writer follows the other one without writing anything.
  await b.write(1, async ([p]) => ({ value: p, rows: row(3) }));
  assert.equal(tracker.of('events', 'a'), 3);
  assert.equal(tracker.current('events'), 3);
  assert.ok(seen.every((u, i) => i === 0 || u.position >= seen[i - 1]!.position || u.instance !== seen[i - 1]!.instance));
});

test('a reservation the database fails midway gives back the positions it drew: the writer is not held back', async () => {
  const next = await sequence();
  let calls = 0;
  const flaky = async () => {
    if (++calls === 2) throw new Error('database unreachable');
    return next();
  };
  const publisher = new StreamPublisher('events', new SequenceIdGenerator(flaky, 0), new InMemoryBus(), 'a');
  // Two positions for one write (a room's first events); the second cannot be drawn.
  await assert.rejects(publisher.reserve(2), /database unreachable/);
  const later = await publisher.reserve(1);
  later.complete([]);
  assert.equal(publisher.current, later.positions[0], 'nothing drawn earlier holds the writer back');
});
