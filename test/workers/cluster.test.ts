// A worker deployment on real PostgreSQL and Redis: writes made through one process reach the
// stream writers that own them and the syncs of every other process.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { deviceKeysOf } from '../helpers/e2ee-keys.js';
import { shardOf } from '../../src/process/placement.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { MatrixError } from '../../src/errors.js';
import { buildCreateEvent } from '../../src/handlers/kernel/events-writer.js';
import { RoomCreationHandler } from '../../src/handlers/rooms/room-creation.js';

const enc = encodeURIComponent;

/** Registers `username` through `instance`, with the device id `<USERNAME>DEV`. */
async function registerOn(cluster: TestCluster, instance: string, username: string) {
  const res = await cluster.instance(instance).call('POST', '/_matrix/client/v3/register', {
    body: { username, password: `${username}-password`, auth: { type: 'm.login.dummy' }, device_id: `${username.toUpperCase()}DEV` },
  });
  assert.equal(res.status, 200, res.text);
  return res.json as { user_id: string; access_token: string; device_id: string };
}

describe('worker deployment: main, two events persisters, two client workers', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({
      workers: ['persister1', 'persister2', 'client1', 'client2'],
      streamWriters: { events: ['persister1', 'persister2'] },
    });
  });
  after(() => cluster?.stop());

  async function register(instance: string, username: string) {
    const res = await cluster.instance(instance).call('POST', '/_matrix/client/v3/register', {
      body: { username, password: `${username}-password`, auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 200, res.text);
    return res.json as { user_id: string; access_token: string };
  }

  test('a message sent through one worker reaches a sync on another, once, in order', async () => {
    const alice = await register('client1', 'alice');
    const bob = await register('client2', 'bob');
    const created = await cluster
      .instance('client1')
      .call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } });
    assert.equal(created.status, 200, created.text);
    const roomId: string = created.json.room_id;
    const joined = await cluster.instance('client2').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.access_token });
    assert.equal(joined.status, 200, joined.text);
    const first = await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: bob.access_token });
    assert.equal(first.status, 200, first.text);
    let since: string = first.json.next_batch;
    for (let i = 0; i < 5; i++) {
      const sent = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${i}`, {
        token: alice.access_token,
        body: { msgtype: 'm.text', body: `hello ${i}` },
      });
      assert.equal(sent.status, 200, sent.text);
    }
    const bodies: string[] = [];
    const deadline = Date.now() + 20_000;
    while (bodies.length < 5 && Date.now() < deadline) {
      const res = await cluster
        .instance('client2')
        .call('GET', `/_matrix/client/v3/sync?since=${enc(since)}&timeout=5000`, { token: bob.access_token });
      assert.equal(res.status, 200, res.text);
      since = res.json.next_batch;
      for (const e of res.json.rooms?.join?.[roomId]?.timeline?.events ?? []) if (e.type === 'm.room.message') bodies.push(e.content.body);
    }
    assert.deepEqual(bodies, ['hello 0', 'hello 1', 'hello 2', 'hello 3', 'hello 4']);
  });

  test('rooms land on both persisters', async () => {
    const carol = await register('client1', 'carol');
    for (let i = 0; i < 8; i++) {
      const res = await cluster.instance('client1').call('POST', '/_matrix/client/v3/createRoom', { token: carol.access_token, body: {} });
      assert.equal(res.status, 200, res.text);
    }
    const db = cluster.instance('main').homeserver.database;
    const rows = await db.all<{ instance_name: string; n: number }>(
      "SELECT instance_name, COUNT(*) AS n FROM events WHERE type = 'm.room.create' GROUP BY instance_name",
    );
    const byInstance = Object.fromEntries(rows.map((r) => [r.instance_name, Number(r.n)]));
    assert.ok((byInstance.persister1 ?? 0) > 0 && (byInstance.persister2 ?? 0) > 0, JSON.stringify(byInstance));
    assert.equal(byInstance.main, undefined, 'main writes no events');
  });

  test("two workers build one user's create event in the same ms: a room each; the taken id gets 409 over RPC, not retried", async () => {
    const dave = await register('client1', 'dave');
    // Each worker's creation handler, with its clock stopped at the same instant.
    const frozenMs = 1_700_000_000_000;
    const handlerOn = (instance: string) => {
      const { services } = cluster.instance(instance).homeserver;
      return new RoomCreationHandler({ ...services, now: () => frozenMs }, services.membership);
    };
    const [one, two] = await Promise.all([
      handlerOn('client1').createRoom(dave.user_id, { name: 'one' }),
      handlerOn('client2').createRoom(dave.user_id, { name: 'two' }),
    ]);
    assert.notEqual(one.room_id, two.room_id);
    const db = cluster.instance('main').homeserver.database;
    for (const [roomId, name] of [
      [one.room_id, 'one'],
      [two.room_id, 'two'],
    ] as const) {
      const names = await db.all<{ json: string }>("SELECT json FROM events WHERE room_id = ? AND type = 'm.room.name'", [roomId]);
      assert.deepEqual(
        names.map((r) => JSON.parse(r.json).content.name),
        [name],
        `${roomId} has its own request's state`,
      );
    }

    // The create event both built first names a room that exists now: its persister refuses it
    // with a 4xx, which the RPC hands back instead of retrying (a retry loop ends in 503).
    const { services } = cluster.instance('client1').homeserver;
    const create = buildCreateEvent(
      { version: getRoomVersion('12')!, creator: dave.user_id, content: {}, now: frozenMs },
      services.serverName,
      services.signingKey,
    );
    const plan = { roomVersion: '12', creator: dave.user_id, createEvent: create.pdu, initialEvents: [], isPublic: false, aliases: [] };
    await assert.rejects(services.eventsWriter.createRoom(plan), (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.status, 409);
      assert.equal(err.errcode, 'M_ROOM_IN_USE');
      return true;
    });
  });
});

describe('worker deployment: stream writers on a worker', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({
      workers: ['client1', 'client2', 'streams'],
      streamWriters: { typing: ['streams'], receipts: ['streams'], to_device: ['streams'], account_data: ['streams'] },
    });
  });
  after(() => cluster?.stop());

  const register = (instance: string, username: string) => registerOn(cluster, instance, username);

  /** Syncs through `instance` until `found` returns something, starting from `since`. */
  async function syncUntil<T>(
    instance: string,
    token: string,
    since: string,
    found: (body: any) => T | undefined,
  ): Promise<{ value: T; since: string }> {
    const deadline = Date.now() + 20_000;
    let position = since;
    while (Date.now() < deadline) {
      const res = await cluster.instance(instance).call('GET', `/_matrix/client/v3/sync?since=${enc(position)}&timeout=3000`, { token });
      assert.equal(res.status, 200, res.text);
      position = res.json.next_batch;
      const value = found(res.json);
      if (value !== undefined) return { value, since: position };
    }
    throw new Error('timed out syncing');
  }

  test('typing, receipts, to-device and account data cross workers', async () => {
    const alice = await register('client1', 'alice');
    const bob = await register('client2', 'bob');
    const roomId: string = (
      await cluster
        .instance('client1')
        .call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } })
    ).json.room_id;
    assert.equal(
      (await cluster.instance('client2').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.access_token })).status,
      200,
    );
    let since: string = (await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: bob.access_token })).json
      .next_batch;

    const typing = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, {
      token: alice.access_token,
      body: { typing: true, timeout: 10_000 },
    });
    assert.equal(typing.status, 200, typing.text);
    ({ since } = await syncUntil('client2', bob.access_token, since, (body) =>
      body.rooms?.join?.[roomId]?.ephemeral?.events?.find((e: any) => e.type === 'm.typing' && e.content.user_ids.includes(alice.user_id)),
    ));

    const sent = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/r1`, {
      token: alice.access_token,
      body: { msgtype: 'm.text', body: 'read me' },
    });
    const eventId: string = sent.json.event_id;
    const receipt = await cluster
      .instance('client2')
      .call('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { token: bob.access_token, body: {} });
    assert.equal(receipt.status, 200, receipt.text);
    let aliceSince: string = (await cluster.instance('client1').call('GET', '/_matrix/client/v3/sync', { token: alice.access_token })).json
      .next_batch;
    const initial = (await cluster.instance('client1').call('GET', '/_matrix/client/v3/sync', { token: alice.access_token })).json;
    const receipts = initial.rooms.join[roomId].ephemeral.events.find((e: any) => e.type === 'm.receipt');
    assert.ok(receipts?.content?.[eventId]?.['m.read']?.[bob.user_id], JSON.stringify(initial.rooms.join[roomId].ephemeral));

    const toDevice = await cluster.instance('client2').call('PUT', `/_matrix/client/v3/sendToDevice/m.test/td1`, {
      token: bob.access_token,
      body: { messages: { [alice.user_id]: { [alice.device_id]: { hello: 'alice' } } } },
    });
    assert.equal(toDevice.status, 200, toDevice.text);
    ({ since: aliceSince } = await syncUntil('client1', alice.access_token, aliceSince, (body) =>
      body.to_device?.events?.find((e: any) => e.type === 'm.test' && e.content.hello === 'alice' && e.sender === bob.user_id),
    ));

    const data = await cluster
      .instance('client2')
      .call('PUT', `/_matrix/client/v3/user/${enc(bob.user_id)}/account_data/org.example.setting`, {
        token: bob.access_token,
        body: { on: true },
      });
    assert.equal(data.status, 200, data.text);
    await syncUntil('client1', bob.access_token, since, (body) =>
      body.account_data?.events?.find((e: any) => e.type === 'org.example.setting'),
    );
    assert.ok(aliceSince);
  });

  test('a token logged out through one process stops working on the others', async () => {
    const dave = await register('client1', 'dave');
    const whoami = (instance: string) =>
      cluster.instance(instance).call('GET', '/_matrix/client/v3/account/whoami', { token: dave.access_token });
    // Every process has the token cached now.
    for (const instance of ['main', 'client1', 'client2', 'streams']) assert.equal((await whoami(instance)).status, 200);
    assert.equal((await cluster.instance('main').call('POST', '/_matrix/client/v3/logout', { token: dave.access_token })).status, 200);
    for (const instance of ['main', 'client1', 'client2', 'streams']) {
      const deadline = Date.now() + 10_000;
      let res = await whoami(instance);
      while (res.status === 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        res = await whoami(instance);
      }
      assert.equal(res.status, 401, `${instance}: ${res.text}`);
      assert.equal(res.json.errcode, 'M_UNKNOWN_TOKEN');
    }
  });

  test('a write through one worker is visible to an immediate read through another', async () => {
    const carol = await register('client1', 'carol');
    const roomId: string = (
      await cluster.instance('client1').call('POST', '/_matrix/client/v3/createRoom', { token: carol.access_token, body: {} })
    ).json.room_id;
    for (let i = 0; i < 5; i++) {
      const sent = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/ryw${i}`, {
        token: carol.access_token,
        body: { msgtype: 'm.text', body: `ryw ${i}` },
      });
      const read = await cluster
        .instance('client2')
        .call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(sent.json.event_id)}`, { token: carol.access_token });
      assert.equal(read.status, 200, read.text);
      const synced = await cluster
        .instance('client2')
        .call('GET', '/_matrix/client/v3/sync?filter=' + enc(JSON.stringify({ room: { timeline: { limit: 1 } } })), {
          token: carol.access_token,
        });
      assert.equal(synced.json.rooms.join[roomId].timeline.events.at(-1).content.body, `ryw ${i}`);
    }
  });
});

describe('worker deployment: two device_lists writers and two receipts writers', () => {
  let cluster: TestCluster;
  const writers = ['keys1', 'keys2'];
  before(async () => {
    cluster = await startTestCluster({
      workers: ['client1', 'client2', ...writers],
      streamWriters: { device_lists: writers, receipts: writers },
    });
  });
  after(() => cluster?.stop());

  const register = (instance: string, username: string) => registerOn(cluster, instance, username);

  test('device keys uploaded through one worker, by users of both writers, reach a sync and a query on another', async () => {
    const alice = await register('client2', 'alice');
    const roomId: string = (
      await cluster
        .instance('client2')
        .call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } })
    ).json.room_id;
    const others = [];
    for (let i = 0; i < 8; i++) {
      const user = await register(i % 2 ? 'client1' : 'client2', `user${i}`);
      assert.equal(
        (await cluster.instance('client1').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: user.access_token })).status,
        200,
      );
      others.push(user);
    }
    // The users hash to both writers, so both allocate positions.
    assert.deepEqual(new Set(others.map((u) => shardOf(u.user_id, writers))), new Set(writers));
    const since: string = (await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: alice.access_token })).json
      .next_batch;

    await Promise.all(
      others.map(async (user) => {
        const upload = await cluster.instance('client1').call('POST', '/_matrix/client/v3/keys/upload', {
          token: user.access_token,
          body: { device_keys: deviceKeysOf({ userId: user.user_id, deviceId: user.device_id }) },
        });
        assert.equal(upload.status, 200, upload.text);
      }),
    );

    const changed = new Set<string>();
    let position = since;
    const deadline = Date.now() + 20_000;
    while (changed.size < others.length && Date.now() < deadline) {
      const res = await cluster
        .instance('client2')
        .call('GET', `/_matrix/client/v3/sync?since=${enc(position)}&timeout=3000`, { token: alice.access_token });
      assert.equal(res.status, 200, res.text);
      position = res.json.next_batch;
      for (const userId of res.json.device_lists?.changed ?? []) changed.add(userId);
    }
    assert.deepEqual([...changed].sort(), others.map((u) => u.user_id).sort());

    const fromTo = await cluster
      .instance('client1')
      .call('GET', `/_matrix/client/v3/keys/changes?from=${enc(since)}&to=${enc(position)}`, { token: alice.access_token });
    assert.deepEqual([...fromTo.json.changed].sort(), others.map((u) => u.user_id).sort());
    const query = await cluster.instance('client2').call('POST', '/_matrix/client/v3/keys/query', {
      token: alice.access_token,
      body: { device_keys: Object.fromEntries(others.map((u) => [u.user_id, []])) },
    });
    assert.equal(query.status, 200, query.text);
    for (const user of others) assert.ok(query.json.device_keys[user.user_id][user.device_id], user.user_id);
  });

  test('receipts in rooms of both receipts writers reach a sync on another worker', async () => {
    const bob = await register('client1', 'bob');
    const carol = await register('client2', 'carol');
    const rooms: string[] = [];
    // Room ids are random: create until both writers own some (six rooms alone all fall on one 1 in 32 times).
    const shardsCovered = () => new Set(rooms.map((r) => shardOf(r, writers))).size === writers.length;
    for (let i = 0; (rooms.length < 6 || !shardsCovered()) && i < 40; i++) {
      const roomId: string = (
        await cluster
          .instance('client1')
          .call('POST', '/_matrix/client/v3/createRoom', { token: bob.access_token, body: { preset: 'public_chat' } })
      ).json.room_id;
      assert.equal(
        (await cluster.instance('client2').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: carol.access_token })).status,
        200,
      );
      rooms.push(roomId);
    }
    assert.deepEqual(new Set(rooms.map((r) => shardOf(r, writers))), new Set(writers));
    let position: string = (await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: carol.access_token })).json
      .next_batch;
    await Promise.all(
      rooms.map(async (roomId, i) => {
        const sent = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/rr${i}`, {
          token: bob.access_token,
          body: { msgtype: 'm.text', body: 'read me' },
        });
        const receipt = await cluster
          .instance('client1')
          .call('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(sent.json.event_id)}`, {
            token: bob.access_token,
            body: {},
          });
        assert.equal(receipt.status, 200, receipt.text);
      }),
    );
    const seen = new Set<string>();
    const deadline = Date.now() + 20_000;
    while (seen.size < rooms.length && Date.now() < deadline) {
      const res = await cluster
        .instance('client2')
        .call('GET', `/_matrix/client/v3/sync?since=${enc(position)}&timeout=3000`, { token: carol.access_token });
      position = res.json.next_batch;
      for (const [roomId, room] of Object.entries<any>(res.json.rooms?.join ?? {})) {
        if (room.ephemeral?.events?.some((e: any) => e.type === 'm.receipt' && JSON.stringify(e.content).includes(bob.user_id)))
          seen.add(roomId);
      }
    }
    assert.deepEqual([...seen].sort(), [...rooms].sort());
  });
});

describe('worker deployment: faults', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({ workers: ['persister1', 'client1', 'client2'], streamWriters: { events: ['persister1'] } });
  });
  after(() => cluster?.stop());

  async function register(instance: string, username: string) {
    const res = await cluster.instance(instance).call('POST', '/_matrix/client/v3/register', {
      body: { username, password: `${username}-password`, auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 200, res.text);
    return res.json as { user_id: string; access_token: string };
  }

  async function collect(instance: string, token: string, since: string, roomId: string, count: number): Promise<string[]> {
    const bodies: string[] = [];
    let position = since;
    const deadline = Date.now() + 30_000;
    while (bodies.length < count && Date.now() < deadline) {
      const res = await cluster.instance(instance).call('GET', `/_matrix/client/v3/sync?since=${enc(position)}&timeout=2000`, { token });
      assert.equal(res.status, 200, res.text);
      position = res.json.next_batch;
      for (const e of res.json.rooms?.join?.[roomId]?.timeline?.events ?? []) if (e.type === 'm.room.message') bodies.push(e.content.body);
    }
    return bodies;
  }

  test('Redis stops for 3 s: every process reconnects and a syncing client misses nothing', async () => {
    const alice = await register('client1', 'alice');
    const bob = await register('client2', 'bob');
    const roomId: string = (
      await cluster
        .instance('client1')
        .call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } })
    ).json.room_id;
    await cluster.instance('client2').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.access_token });
    const since: string = (await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: bob.access_token })).json
      .next_batch;
    await cluster.redis.stop();
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/out${i}`, {
        token: alice.access_token,
        body: { msgtype: 'm.text', body: `during ${i}` },
      });
      assert.equal(res.status, 200, res.text);
      sent.push(`during ${i}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await cluster.redis.start();
    const after = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/after`, {
      token: alice.access_token,
      body: { msgtype: 'm.text', body: 'after' },
    });
    assert.equal(after.status, 200);
    assert.deepEqual(await collect('client2', bob.access_token, since, roomId, 7), [...sent, 'after']);
  });

  test('the events persister goes away: sends wait for it and land once, none lost, none twice', async () => {
    const carol = await register('client1', 'carol');
    const roomId: string = (
      await cluster.instance('client1').call('POST', '/_matrix/client/v3/createRoom', { token: carol.access_token, body: {} })
    ).json.room_id;
    const since: string = (await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: carol.access_token })).json
      .next_batch;
    const persister = cluster.instance('persister1');
    const { loadConfig } = await import('../../src/config/load.js');
    const { startWorker } = await import('../../src/process/homeserver.js');
    const pino = (await import('pino')).default;
    await persister.homeserver.stop(0);
    // Sends made while it is down are retried by client1 until it is back.
    const pending = Array.from({ length: 4 }, (_, i) =>
      cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/down${i}`, {
        token: carol.access_token,
        body: { msgtype: 'm.text', body: `down ${i}` },
      }),
    );
    await new Promise((r) => setTimeout(r, 2000));
    const { join } = await import('node:path');
    const config = loadConfig([join(cluster.dir, 'homeserver.yaml'), join(cluster.dir, 'persister1.yaml')], { warn: () => undefined });
    persister.homeserver = await startWorker(config, pino({ level: 'silent' }));
    const results = await Promise.all(pending);
    for (const res of results) assert.equal(res.status, 200, res.text);
    // The client retries one of them with the same transaction id: the same event comes back.
    const retried = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/down0`, {
      token: carol.access_token,
      body: { msgtype: 'm.text', body: 'down 0' },
    });
    assert.equal(retried.json.event_id, results[0]!.json.event_id);
    const bodies = await collect('client2', carol.access_token, since, roomId, 4);
    assert.deepEqual([...bodies].sort(), ['down 0', 'down 1', 'down 2', 'down 3']);
  });
});
