// The Redis replication bus against a real redis-server on a UNIX socket, with several buses (one
// per would-be process) in this test process.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { StreamRow, StreamUpdate } from '../../src/streams/bus.js';
import { InMemoryBus } from '../../src/streams/bus.js';
import type { StartingPosition, StreamCatchUp } from '../../src/replication/catch-up.js';
import type { BusCommand } from '../../src/streams/bus.js';
import { RedisBus } from '../../src/replication/redis-bus.js';
import type { StreamName } from '../../src/streams/streams.js';
import { startRedis, type RedisServer } from '../harness/redis.js';

/**
 * What every process's database holds: each writer's updates by position. The catch-up source of
 * every test process reads from it, as the real one reads the shared database.
 */
class SharedStore {
  private readonly updates = new Map<string, StreamUpdate[]>();
  failNext = 0;
  fetches: Array<{ stream: StreamName; instance: string; from: number; to: number }> = [];

  record(update: StreamUpdate): void {
    const key = `${update.stream} ${update.instance}`;
    this.updates.set(key, [...(this.updates.get(key) ?? []), update]);
  }

  written(stream: StreamName, instance: string): StreamUpdate[] {
    return this.updates.get(`${stream} ${instance}`) ?? [];
  }

  catchUpFor(process: TestProcess): StreamCatchUp {
    return {
      writtenStreams: () => [...process.positions].map(([stream, position]) => ({ stream, position })),
      rowsBetween: async (stream, instance, from, to) => {
        this.fetches.push({ stream, instance, from, to });
        if (this.failNext > 0) {
          this.failNext--;
          throw new Error('database unavailable');
        }
        return this.written(stream, instance)
          .filter((u) => u.position > from && u.position <= to)
          .flatMap((u) => u.rows);
      },
    };
  }
}

interface LogLine {
  level: number;
  name?: string;
  msg: string;
  connection?: string;
}

class TestProcess {
  readonly bus: RedisBus;
  /** Updates with rows. */
  readonly received: StreamUpdate[] = [];
  /** Updates that only advance a writer's position (no rows). */
  readonly advances: StreamUpdate[] = [];
  readonly commands: BusCommand[] = [];
  readonly logs: LogLine[] = [];
  /** The streams this process writes and their positions. */
  readonly positions = new Map<StreamName, number>();

  constructor(
    readonly instance: string,
    store: SharedStore,
    options: {
      serverName: string;
      redis: RedisServer;
      writes?: StreamName[];
      userIpChannel?: boolean;
      initialPositions?: StartingPosition[];
    },
  ) {
    for (const stream of options.writes ?? []) this.positions.set(stream, 0);
    const log = pino({ level: 'debug', base: { instance } }, { write: (line: string) => void this.logs.push(JSON.parse(line) as LogLine) });
    this.bus = new RedisBus({
      serverName: options.serverName,
      instanceName: instance,
      redis: options.redis.config,
      log,
      userIpChannel: options.userIpChannel ?? false,
      initialPositions: options.initialPositions ?? [],
      positionIntervalMs: 500,
    });
    this.bus.subscribe((update) => (update.rows.length > 0 ? this.received : this.advances).push(update));
    this.bus.onCommand((command) => this.commands.push(command));
    this.store = store;
  }

  private readonly store: SharedStore;

  /** Starts the bus, catching up from the shared store. */
  start(): Promise<void> {
    return this.bus.start(this.store.catchUpFor(this));
  }

  /** Writes one update of `rows` to a stream this process writes, as a stream writer does. */
  write(stream: StreamName, rows: StreamRow[]): StreamUpdate {
    const position = (this.positions.get(stream) ?? 0) + 1;
    this.positions.set(stream, position);
    const update: StreamUpdate = { stream, instance: this.instance, position, rows };
    this.store.record(update);
    this.bus.publish(update);
    return update;
  }

  /** The updates of one writer's stream this process was given. */
  from(stream: StreamName, instance: string): StreamUpdate[] {
    return this.received.filter((u) => u.stream === stream && u.instance === instance);
  }

  messages(text: string, component = 'myelin.replication.redis'): LogLine[] {
    return this.logs.filter((l) => l.name === component && l.msg.includes(text));
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let serverCounter = 0;
const newServerName = () => `test${process.pid}-${serverCounter++}.example.org`;

function eventRow(n: number, text = ''): StreamRow {
  return {
    stream: 'events',
    roomId: '!room:example.org',
    eventId: `$event${n}${text}`,
    type: 'm.room.message',
    sender: '@alice:example.org',
  };
}

/** All rows a writer wrote on a stream, in order. */
function rowsOf(updates: readonly StreamUpdate[]): StreamRow[] {
  return updates.flatMap((u) => u.rows);
}

function assertIncreasing(updates: readonly StreamUpdate[]): void {
  for (let i = 1; i < updates.length; i++) assert.ok(updates[i]!.position > updates[i - 1]!.position, 'positions increase');
}

describe('RedisBus over a real Redis', () => {
  let redis: RedisServer;
  const processes: TestProcess[] = [];
  const spawnProcess = (...args: ConstructorParameters<typeof TestProcess>) => {
    const created = new TestProcess(...args);
    processes.push(created);
    return created;
  };

  before(async () => {
    redis = await startRedis();
  });

  // Each test's processes stop with it, so connection names are unique while a test runs.
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.bus.close()));
  });

  after(async () => {
    await redis.destroy();
  });

  it('connects with the guide’s log lines and delivers every update once, in order, with its batch', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events', 'typing'] });
    const readers = [spawnProcess('worker1', store, { serverName, redis }), spawnProcess('worker2', store, { serverName, redis })];
    await Promise.all([writer, ...readers].map((p) => p.start()));

    for (const p of [writer, ...readers]) {
      assert.equal(p.messages(`Connecting to redis server at ${redis.socketPath}`).length, 2, 'one line per connection');
      assert.equal(p.messages('Connected to redis').length, 2);
      assert.equal(p.messages(`Sending redis SUBSCRIBE for ['${serverName}']`).length, 1);
      assert.equal(p.messages('Successfully subscribed to redis stream, sending REPLICATE command').length, 1);
      assert.equal(p.messages('REPLICATE successfully sent').length, 1);
    }
    // Readers follow the writer from the position it announced, before it writes anything.
    await until(() => readers.every((r) => r.bus.positionOf('events', 'persister1') === 0), 'readers to follow the writer');

    const published: StreamUpdate[] = [];
    for (let i = 1; i <= 30; i++) {
      const rows = Array.from({ length: 1 + (i % 4) }, (_, j) => eventRow(i * 10 + j, ' with spaces and ünïcödé'));
      published.push(writer.write('events', rows));
      if (i % 10 === 0) published.push(writer.write('typing', [{ stream: 'typing', roomId: '!room:example.org', userIds: [`@u${i}:x`] }]));
    }

    for (const reader of readers) {
      await until(() => reader.received.length === published.length, `${reader.instance} to receive every update`);
      // Batches arrive whole: the same updates, with the same rows and positions, in order.
      assert.deepEqual(
        reader.from('events', 'persister1'),
        published.filter((u) => u.stream === 'events'),
      );
      assert.deepEqual(
        reader.from('typing', 'persister1'),
        published.filter((u) => u.stream === 'typing'),
      );
    }
    // The writer's own subscribers got each update once, locally; its echoes from Redis were ignored.
    await sleep(200);
    assert.deepEqual(writer.received, published);
    for (const reader of readers) assert.equal(reader.received.length, published.length, 'nothing delivered twice');
    assert.deepEqual(store.fetches, [], 'no catch-up was needed');
  });

  it('delivers a writer’s RDATA to a reader that stays connected while the writer comes and goes', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const reader = spawnProcess('worker1', store, { serverName, redis });
    await reader.start();
    const writer = spawnProcess('stream_writer', store, { serverName, redis, writes: ['receipts'] });
    await writer.start();
    await until(() => reader.bus.positionOf('receipts', 'stream_writer') === 0, 'the reader to hear the new writer');
    const first = writer.write('receipts', [{ stream: 'receipts', roomId: '!r:x', userId: '@a:x' }]);
    await until(() => reader.received.length === 1, 'the first receipt');
    assert.deepEqual(reader.received, [first]);

    // The writer restarts from its stored position; the reader keeps what it had.
    await writer.bus.close();
    const restarted = spawnProcess('stream_writer', store, { serverName, redis, writes: ['receipts'] });
    restarted.positions.set('receipts', 1);
    await restarted.start();
    const second = restarted.write('receipts', [{ stream: 'receipts', roomId: '!r:x', userId: '@b:x' }]);
    await until(() => reader.received.length === 2, 'the second receipt');
    assert.deepEqual(reader.received, [first, second]);
  });

  it('follows an in-memory stream that starts again from 0 when its writer restarts', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const reader = spawnProcess('worker1', store, { serverName, redis });
    const writer = spawnProcess('typing_writer', store, { serverName, redis, writes: ['typing'] });
    await Promise.all([reader.start(), writer.start()]);
    await until(() => reader.bus.positionOf('typing', 'typing_writer') === 0, 'the reader to follow');
    const typing = (userIds: string[]): StreamRow => ({ stream: 'typing', roomId: '!r:x', userIds });
    const before = [writer.write('typing', [typing(['@a:x'])]), writer.write('typing', [typing([])])];
    await until(() => reader.received.length === 2, 'typing before the restart');

    await writer.bus.close();
    const restarted = spawnProcess('typing_writer', new SharedStore(), { serverName, redis, writes: ['typing'] });
    await restarted.start();
    await until(() => reader.bus.positionOf('typing', 'typing_writer') === 0, 'the reader to start over');
    const after = restarted.write('typing', [typing(['@b:x'])]);
    await until(() => reader.received.length === 3, 'typing after the restart');
    assert.deepEqual(reader.received, [...before, after]);
    assert.equal(reader.messages("Stream 'typing' / typing_writer went back from 2 to 0").length, 1);
  });

  it('starts a reader at the writer’s first POSITION, or catches up from its initial position', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events'] });
    await writer.start();
    const written = [1, 2, 3, 4, 5].map((n) => writer.write('events', [eventRow(n)]));

    // Loaded its state at position 2: catches up with 3..5.
    const loadedAt2 = spawnProcess('worker1', store, {
      serverName,
      redis,
      initialPositions: [{ stream: 'events', instance: 'persister1', position: 2 }],
    });
    // Knows nothing of the writer: starts at its current position.
    const fresh = spawnProcess('worker2', store, { serverName, redis });
    await Promise.all([loadedAt2.start(), fresh.start()]);

    await until(() => loadedAt2.bus.positionOf('events', 'persister1') === 5, 'the catch-up');
    assert.deepEqual(loadedAt2.received, [{ stream: 'events', instance: 'persister1', position: 5, rows: rowsOf(written.slice(2)) }]);
    assert.ok(loadedAt2.messages("Fetching replication rows for 'events' / persister1 between 2 and 5").length >= 1);
    assert.ok(loadedAt2.messages("Caught up with stream 'events' / persister1 to 5").length >= 1);
    await until(() => fresh.bus.positionOf('events', 'persister1') === 5, 'the fresh reader to follow');
    assert.deepEqual(fresh.received, []);
    // Its subscribers learn where the writer stands.
    assert.deepEqual(fresh.advances, [{ stream: 'events', instance: 'persister1', position: 5, rows: [] }]);

    const next = writer.write('events', [eventRow(6)]);
    await until(() => loadedAt2.received.length === 2 && fresh.received.length === 1, 'the next update');
    assert.deepEqual(fresh.received, [next]);
    assert.deepEqual(loadedAt2.received[1], next);
  });

  it('retries a catch-up that failed, and delivers nothing past the gap meanwhile', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events'] });
    await writer.start();
    const written = [writer.write('events', [eventRow(1)]), writer.write('events', [eventRow(2)])];
    store.failNext = 2;
    const reader = spawnProcess('worker1', store, {
      serverName,
      redis,
      initialPositions: [{ stream: 'events', instance: 'persister1', position: 0 }],
    });
    await reader.start();
    written.push(writer.write('events', [eventRow(3)]));
    await until(() => reader.bus.positionOf('events', 'persister1') === 3, 'the retried catch-up');
    await sleep(100);
    assert.ok(store.fetches.length >= 3, 'fetched again after failing');
    assert.ok(reader.messages('Failed to fetch replication rows between 0 and').length >= 1);
    assert.deepEqual(rowsOf(reader.received), rowsOf(written), 'every row once, in order');
    assertIncreasing(reader.received);
  });

  it('ignores malformed lines on the channel and keeps delivering', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events'] });
    const reader = spawnProcess('worker1', store, { serverName, redis });
    await Promise.all([writer.start(), reader.start()]);
    await until(() => reader.bus.positionOf('events', 'persister1') === 0, 'the reader to follow the writer');
    const first = writer.write('events', [eventRow(1)]);

    const raw = new Redis({ path: redis.socketPath, lazyConnect: true });
    await raw.connect();
    try {
      for (const line of [
        'this is not a command',
        'RDATA events persister1 2 {"not json',
        'POSITION events persister1 one two',
        'RDATA events persister1 2 [1,2,3]',
        'RDATA no_such_stream persister1 4 {"stream":"no_such_stream"}',
        'USER_SYNC w @u:x DEV sideways 1',
        '',
        '\u0000\uffff',
      ]) {
        await raw.publish(serverName, line);
      }
    } finally {
      await raw.quit();
    }
    const second = writer.write('events', [eventRow(2), eventRow(3)]);
    await until(() => reader.received.length === 2, 'the update after the malformed lines');
    assert.deepEqual(reader.received, [first, second]);
    assert.equal(reader.messages('Failed to parse replication line').length, 5);
    assert.ok(reader.messages('Ignoring an RDATA row of the wrong shape').length === 1);
    assert.ok(reader.messages('Ignoring RDATA for an unknown stream').length === 1);
    assert.equal(reader.messages('Failed to parse replication line')[0]!.level, 40, 'a warning');
  });

  it('sends USER_IP on its own channel, only to the processes that subscribe to it', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const main = spawnProcess('main', store, { serverName, redis, userIpChannel: true });
    const worker1 = spawnProcess('worker1', store, { serverName, redis });
    const worker2 = spawnProcess('worker2', store, { serverName, redis });
    await Promise.all([main, worker1, worker2].map((p) => p.start()));
    assert.equal(main.messages(`Sending redis SUBSCRIBE for ['${serverName}/USER_IP', '${serverName}']`).length, 1);

    const userIp: BusCommand = {
      name: 'USER_IP',
      userId: '@alice:example.org',
      accessToken: 'syt_token',
      ip: '192.0.2.1',
      userAgent: 'Element (Linux)',
      deviceId: 'DEVICE',
      lastSeen: 1_700_000_000_000,
    };
    const userSync: BusCommand = {
      name: 'USER_SYNC',
      instanceId: 'worker2',
      userId: '@alice:example.org',
      deviceId: null,
      isSyncing: true,
      lastSyncMs: 5,
    };
    const serverUp: BusCommand = { name: 'REMOTE_SERVER_UP', server: 'remote.example.org' };
    worker2.bus.send(userIp);
    worker2.bus.send(userSync);
    worker2.bus.send(serverUp);
    // Redis handles one connection's PUBLISHes in order: once REMOTE_SERVER_UP has arrived, a
    // USER_IP meant for this process would have arrived too.
    for (const p of [main, worker1, worker2])
      await until(() => p.commands.some((c) => c.name === 'REMOTE_SERVER_UP'), `${p.instance} to receive commands`);
    assert.deepEqual(main.commands, [userIp, userSync, serverUp]);
    assert.deepEqual(worker1.commands, [userSync, serverUp]);
    assert.deepEqual(worker2.commands, [userSync, serverUp], 'the sender hears its own broadcasts, as every process does');

    const raw = new Redis({ path: redis.socketPath, lazyConnect: true });
    await raw.connect();
    const onMain: string[] = [];
    const onUserIp: string[] = [];
    try {
      await raw.subscribe(serverName, `${serverName}/USER_IP`);
      raw.on('message', (channel: string, message: string) => (channel === serverName ? onMain : onUserIp).push(message));
      worker1.bus.send(userIp);
      worker1.bus.send({ name: 'CLEAR_USER_SYNC', instanceId: 'worker1' });
      await until(() => onMain.length === 1 && onUserIp.length === 1, 'the raw subscriber to see both');
      assert.match(onUserIp[0]!, /^USER_IP @alice:example.org \[/);
      assert.equal(onMain[0], 'CLEAR_USER_SYNC worker1');
    } finally {
      await raw.quit();
    }
  });

  it('survives Redis stopping for 3 s: everyone reconnects and readers catch up on what was sent meanwhile', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events', 'to_device'] });
    const readers = [
      spawnProcess('worker1', store, { serverName, redis }),
      spawnProcess('worker2', store, { serverName, redis, userIpChannel: true }),
    ];
    const everyone = [writer, ...readers];
    await Promise.all(everyone.map((p) => p.start()));
    await until(
      () => readers.every((r) => r.bus.positionOf('events', 'persister1') === 0 && r.bus.positionOf('to_device', 'persister1') === 0),
      'readers to follow',
    );

    const before = [1, 2, 3].map((n) => writer.write('events', [eventRow(n)]));
    await until(() => readers.every((r) => r.received.length === 3), 'updates before the outage');

    await redis.stop();
    await until(() => everyone.every((p) => p.messages('Lost connection to redis').length === 2), 'every connection to notice');
    const during: StreamUpdate[] = [];
    for (let n = 4; n <= 9; n++) {
      during.push(writer.write('events', [eventRow(n), eventRow(n * 100)]));
      if (n % 3 === 0) during.push(writer.write('to_device', [{ stream: 'to_device', userId: '@bob:x', deviceId: `D${n}` }]));
      await sleep(500);
    }
    assert.ok(writer.messages('Not connected to redis: dropping RDATA').length === 1, 'one warning per outage');
    await redis.start();

    for (const p of everyone) {
      await until(() => p.messages('REPLICATE successfully sent').length === 2, `${p.instance} to replicate again`);
      assert.ok(p.messages(`Connecting to redis server at ${redis.socketPath}`).length >= 4);
      assert.equal(p.messages('Connected to redis').length, 4, 'both connections reconnected');
      assert.equal(p.messages('Sending redis SUBSCRIBE for').length, 2);
      assert.equal(p.messages('Successfully subscribed to redis stream, sending REPLICATE command').length, 2);
    }
    const afterwards = [10, 11].map((n) => writer.write('events', [eventRow(n)]));

    const events = [...before, ...during, ...afterwards].filter((u) => u.stream === 'events');
    const toDevice = during.filter((u) => u.stream === 'to_device');
    for (const reader of readers) {
      await until(
        () => reader.bus.positionOf('events', 'persister1') === 11 && reader.bus.positionOf('to_device', 'persister1') === toDevice.length,
        `${reader.instance} to catch up`,
      );
      await sleep(300);
      // Every row once, in the writer's order, however it arrived (RDATA or catch-up).
      assert.deepEqual(rowsOf(reader.from('events', 'persister1')), rowsOf(events));
      assert.deepEqual(rowsOf(reader.from('to_device', 'persister1')), rowsOf(toDevice));
      assertIncreasing(reader.from('events', 'persister1'));
      assertIncreasing(reader.from('to_device', 'persister1'));
      assert.ok(reader.messages("Fetching replication rows for 'events' / persister1 between 3 and").length >= 1);
    }
    assert.deepEqual(writer.received, [...before, ...during, ...afterwards], 'local subscribers got everything at once');
  });

  it('loses nothing when only a reader’s subscription or only a writer’s publisher connection drops', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const writer = spawnProcess('persister1', store, { serverName, redis, writes: ['events'] });
    const reader = spawnProcess('worker1', store, { serverName, redis });
    await Promise.all([writer.start(), reader.start()]);
    await until(() => reader.bus.positionOf('events', 'persister1') === 0, 'the reader to follow');

    const admin = new Redis({ path: redis.socketPath, lazyConnect: true });
    await admin.connect();
    const kill = async (connectionName: string) => {
      const clients = (await admin.client('LIST')) as string;
      const line = clients.split('\n').find((l) => l.includes(` name=${connectionName} `));
      assert.ok(line, `${connectionName} is connected`);
      await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!);
    };
    let n = 0;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        n++;
        writer.write('events', [eventRow(n)]);
        // Often enough that RDATA arrive between a resubscription and the POSITION answering it.
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      await sleep(50);
      await kill('myelin-worker1-subscriber');
      await sleep(300);
      await kill('myelin-persister1-publisher');
      await sleep(300);
    } finally {
      writing = false;
      await writes;
      await admin.quit();
    }
    await until(() => reader.bus.positionOf('events', 'persister1') === n, 'the reader to catch up');
    await sleep(100);
    assert.deepEqual(rowsOf(reader.received), rowsOf(store.written('events', 'persister1')), 'every row once, in order');
    assertIncreasing(reader.received);
    assert.equal(reader.messages('Lost connection to redis').length, 1);
    assert.equal(writer.messages('Lost connection to redis').length, 1);
    assert.ok(store.fetches.length >= 2, 'both gaps were fetched');
  });

  it('closes both connections', async () => {
    const serverName = newServerName();
    const store = new SharedStore();
    const p = spawnProcess('worker9', store, { serverName, redis });
    await p.start();
    assert.equal(p.bus.connected, true);
    await p.bus.close();
    assert.equal(p.bus.connected, false);
    // Publishing after close still reaches local subscribers, and nothing else.
    p.write('events', [eventRow(1)]);
    assert.equal(p.received.length, 1);
  });
});

describe('InMemoryBus commands', () => {
  it('delivers sent commands to local listeners until they unsubscribe', async () => {
    const bus = new InMemoryBus();
    const heard: BusCommand[] = [];
    const stop = bus.onCommand((c) => heard.push(c));
    bus.send({ name: 'REMOTE_SERVER_UP', server: 'a.example.org' });
    stop();
    bus.send({ name: 'REMOTE_SERVER_UP', server: 'b.example.org' });
    assert.deepEqual(heard, [{ name: 'REMOTE_SERVER_UP', server: 'a.example.org' }]);
    await bus.close();
  });
});
