// Real writers carried over replication HTTP: the events writer and ephemeral writers of a running
// homeserver, served with `serveWriter` on a UNIX socket and called through `remoteWriter`.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { MatrixError } from '../../src/errors.js';
import type { AccountDataWriterApi } from '../../src/handlers/ephemeral/account-data.js';
import type { ReceiptsWriterApi } from '../../src/handlers/ephemeral/receipts.js';
import { buildCreateEvent, type EventsWriterApi } from '../../src/handlers/kernel/events-writer.js';
import type { RunningListener } from '../../src/http/listener.js';
import { WRITERS } from '../../src/process/writers.js';
import { remoteWriter, serveWriter, type MethodName } from '../../src/replication/rpc-proxy.js';
import { rpcPath, RpcClient, RpcServer, type ReplicationPositions } from '../../src/replication/rpc.js';
import { startTestHomeserver, type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep, startReplicationListener, type ReplicationListenerOptions } from './rpc-helpers.js';

const SECRET = 'proxy-secret';
// The methods the writer registry carries between processes.
const EVENTS_METHODS: readonly MethodName<EventsWriterApi>[] = WRITERS.events.methods;
const ACCOUNT_DATA_METHODS: readonly MethodName<AccountDataWriterApi>[] = WRITERS.account_data.methods;
const RECEIPTS_METHODS: readonly MethodName<ReceiptsWriterApi>[] = WRITERS.receipts.methods;

describe('writers over replication HTTP', () => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let rpcServer: RpcServer;
  const listeners: RunningListener[] = [];
  const clients: RpcClient[] = [];
  let calleePositions: ReplicationPositions[] = [];

  before(async () => {
    hs = await startTestHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    const { services } = hs.homeserver;
    // Single process: every stream is written by `main`, at the notifier's positions.
    rpcServer = new RpcServer({
      secret: SECRET,
      currentPositions: () =>
        Object.fromEntries(Object.entries(services.notifier.currentPositions()).map(([stream, position]) => [stream, { main: position }])),
    });
    serveWriter(rpcServer, 'events', services.eventsWriter, EVENTS_METHODS);
    serveWriter(rpcServer, 'account_data', services.ephemeralWriters.accountData, ACCOUNT_DATA_METHODS);
    serveWriter(rpcServer, 'receipts', services.ephemeralWriters.receipts, RECEIPTS_METHODS);
  });
  after(async () => {
    await Promise.all(listeners.map((l) => l.close(0)));
    await Promise.all(clients.map((c) => c.close()));
    await hs.stop();
  });

  async function serveOn(path: string, options: ReplicationListenerOptions = {}): Promise<void> {
    listeners.push(await startReplicationListener({ ...hs.homeserver.services, rpcServer }, { path }, options));
  }

  function clientFor(path: string): RpcClient {
    const client = new RpcClient({
      instanceMap: { main: { path } },
      secret: SECRET,
      callerPositions: () => ({}),
      onCalleePositions: (_instance, positions) => void calleePositions.push(positions),
    });
    clients.push(client);
    return client;
  }

  async function servedWriters(options: ReplicationListenerOptions = {}) {
    const path = join(tempDir('myelin-proxy-'), 'replication.sock');
    await serveOn(path, options);
    const client = clientFor(path);
    return {
      path,
      events: remoteWriter<EventsWriterApi>(client, 'main', 'events', EVENTS_METHODS),
      accountData: remoteWriter<AccountDataWriterApi>(client, 'main', 'account_data', ACCOUNT_DATA_METHODS),
      receipts: remoteWriter<ReceiptsWriterApi>(client, 'main', 'receipts', RECEIPTS_METHODS),
    };
  }

  async function createRoom(events: EventsWriterApi, creator: TestUser): Promise<string> {
    const { services } = hs.homeserver;
    const create = buildCreateEvent(
      { version: getRoomVersion('12')!, creator: creator.userId, content: {}, now: Date.now() },
      services.serverName,
      services.signingKey,
    );
    const { roomId } = await events.createRoom({
      roomVersion: '12',
      creator: creator.userId,
      createEvent: create.pdu,
      initialEvents: [
        { type: 'm.room.member', stateKey: creator.userId, sender: creator.userId, content: { membership: 'join' } },
        { type: 'm.room.power_levels', stateKey: '', sender: creator.userId, content: {} },
        { type: 'm.room.join_rules', stateKey: '', sender: creator.userId, content: { join_rule: 'invite' } },
      ],
      isPublic: false,
      aliases: [],
    });
    return roomId;
  }

  async function messagesWithBody(roomId: string, body: string): Promise<number> {
    const rows = await hs.homeserver.database.all<{ json: string }>('SELECT json FROM events WHERE room_id = ?', [roomId]);
    return rows.filter((r) => (JSON.parse(r.json) as { content: { body?: string } }).content.body === body).length;
  }

  test('createRoom and sendEvent through the proxy persist real events, and the caller learns the new position', async () => {
    const { events } = await servedWriters();
    const roomId = await createRoom(events, alice);
    assert.match(roomId, /^!/);
    calleePositions = [];
    const sent = await events.sendEvent(roomId, {
      type: 'm.room.message',
      sender: alice.userId,
      content: { msgtype: 'm.text', body: 'over the wire' },
    });
    assert.match(sent.eventId, /^\$/);
    assert.ok(Number.isInteger(sent.streamOrdering));

    const fetched = await hs.call(
      'GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.eventId)}`,
      { token: alice.accessToken },
    );
    assert.equal(fetched.status, 200);
    assert.equal(fetched.json.content.body, 'over the wire');
    assert.ok((calleePositions[0]?.events?.main ?? -1) >= sent.streamOrdering, 'the returned events position covers the write');
  });

  test('the writer’s own send options travel too: one client transaction id, one event', async () => {
    const { events } = await servedWriters();
    const roomId = await createRoom(events, alice);
    const draft = { type: 'm.room.message', sender: alice.userId, content: { body: 'once per client txn' } };
    const txn = { userId: alice.userId, deviceId: alice.deviceId, txnId: 'client-txn-1' };
    const first = await events.sendEvent(roomId, draft, { txn });
    const again = await events.sendEvent(roomId, draft, { txn });
    assert.equal(again.eventId, first.eventId);
    assert.equal(await messagesWithBody(roomId, 'once per client txn'), 1);
  });

  test('the writer’s Matrix errors reach the caller as they are thrown locally', async () => {
    const { events } = await servedWriters();
    const { eventsWriter } = hs.homeserver.services;
    const roomId = await createRoom(events, alice);
    const cases: [string, Parameters<EventsWriterApi['sendEvent']>][] = [
      ['not a member', [roomId, { type: 'm.room.message', sender: bob.userId, content: { body: 'let me in' } }]],
      ['unknown room', ['!nowhere:test.local', { type: 'm.room.message', sender: alice.userId, content: {} }]],
    ];
    for (const [what, args] of cases) {
      const local = await eventsWriter.sendEvent(...args).then(
        () => assert.fail(`${what}: expected a failure`),
        (err: unknown) => err,
      );
      assert.ok(local instanceof MatrixError, what);
      await assert.rejects(events.sendEvent(...args), (err: unknown) => {
        assert.ok(err instanceof MatrixError, what);
        assert.deepEqual([err.status, err.errcode, err.message], [local.status, local.errcode, local.message], what);
        return true;
      });
    }
  });

  test('ephemeral writers: null arguments stay null, boolean results come back', async () => {
    const { accountData, receipts, events } = await servedWriters();
    await accountData.setAccountData(alice.userId, null, 'org.example.remote', { written: 'remotely' });
    const read = await hs.call('GET', `/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/account_data/org.example.remote`, {
      token: alice.accessToken,
    });
    assert.equal(read.status, 200);
    assert.deepEqual(read.json, { written: 'remotely' });

    const roomId = await createRoom(events, alice);
    const sent = await events.sendEvent(roomId, { type: 'm.room.message', sender: alice.userId, content: { body: 'read me' } });
    const receipt = {
      roomId,
      userId: alice.userId,
      receiptType: 'm.read',
      threadId: null,
      eventId: sent.eventId,
      eventStreamOrdering: sent.streamOrdering,
      ts: Date.now(),
    };
    assert.equal(await receipts.putReceipt(receipt), true);
    assert.equal(await receipts.putReceipt(receipt), false, 'a receipt not ahead of the current one is not stored');
  });

  test('a lost response to a real send: the retry persists nothing more', async () => {
    const { events: direct } = await servedWriters();
    const roomId = await createRoom(direct, alice);
    const { events } = await servedWriters({ loseResponses: 1 });
    const sent = await events.sendEvent(roomId, {
      type: 'm.room.message',
      sender: alice.userId,
      content: { body: 'sent once, answered twice' },
    });
    assert.match(sent.eventId, /^\$/);
    assert.equal(await messagesWithBody(roomId, 'sent once, answered twice'), 1);
  });

  test('a send accepted while the writer is down lands once when it comes back', async () => {
    const { events: direct } = await servedWriters();
    const roomId = await createRoom(direct, alice);
    const path = join(tempDir('myelin-proxy-'), 'replication.sock');
    const events = remoteWriter<EventsWriterApi>(clientFor(path), 'main', 'events', EVENTS_METHODS);
    const pending = events.sendEvent(roomId, { type: 'm.room.message', sender: alice.userId, content: { body: 'waited for the writer' } });
    await sleep(1200);
    assert.equal(await messagesWithBody(roomId, 'waited for the writer'), 0);
    await serveOn(path);
    const sent = await pending;
    assert.match(sent.eventId, /^\$/);
    assert.equal(await messagesWithBody(roomId, 'waited for the writer'), 1);
  });

  test('arguments that are not an array are refused with 400', async () => {
    const { path } = await servedWriters();
    const res = await request({ socketPath: path }, 'POST', rpcPath('events.sendEvent', 'not-an-array'), {
      body: JSON.stringify({ args: { roomId: '!x:test.local' }, positions: {} }),
      headers: { Authorization: `Bearer ${SECRET}` },
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.errcode, 'M_BAD_JSON');
  });

  test('serving something that is not a method is a programming error', () => {
    const server = new RpcServer({ secret: undefined, currentPositions: () => ({}) });
    assert.throws(() => serveWriter(server, 'x', { notAMethod: 1 } as never, ['notAMethod'] as never), /is not a method/);
  });
});
