// Federation in worker mode, end to end: a Myelin worker deployment as real processes (main,
// two generic workers, an events persister and two federation senders `fed1`, `fed2`, on real
// PostgreSQL and Redis; test/helpers/process-cluster.ts) federates with a single-process Myelin
// (in this process, SQLite). Other servers reach the deployment through a TLS terminator in front
// of the built-in router (which refuses TLS itself), and the router sends every federation request
// to a generic worker (main serves no federation here). Users on both sides join the other's room
// (remote joins both ways: make_join/send_join served by a worker, the join persisted over RPC by
// the room's events writer); messages both ways arrive once and in each sender's order; each
// inbound transaction was taken by a generic worker, and what the deployment sends to the other
// server leaves from the sender instance its name hashes to.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { senderInstanceFor } from '../../src/federation/sender/index.js';
import {
  httpsCall,
  LOOPBACK_FEDERATION,
  startFederatingServer,
  startTlsTerminator,
  type FederatingServer,
  type TlsTerminator,
} from '../helpers/federation.js';
import type { TestUser } from '../helpers/homeserver.js';
import { startProcessCluster, type ProcessCluster } from '../helpers/process-cluster.js';
import { freePort } from '../helpers/server-process.js';
import { eventually } from '../helpers/wait.js';

const SENDERS = ['fed1', 'fed2'];
const MESSAGES = 20;
const enc = encodeURIComponent;

interface Answer {
  status: number;
  json: any;
  text: string;
}

/** A client request to the deployment through its router. */
async function routerCall(cluster: ProcessCluster, method: string, path: string, token?: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${cluster.routerUrl}${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function aCall(a: FederatingServer, user: TestUser, method: string, path: string, body?: unknown): Promise<Answer> {
  return httpsCall(a.baseUrl, method, path, {
    headers: { Authorization: `Bearer ${user.accessToken}` },
    ...(body === undefined ? {} : { body }),
  });
}

/** The bodies of the room's messages, oldest first, as a client of one server reads them. */
async function messageBodies(read: (path: string) => Promise<Answer>, roomId: string): Promise<Array<{ sender: string; body: string }>> {
  const res = await read(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1000`);
  assert.equal(res.status, 200, res.text);
  return (res.json.chunk as any[])
    .filter((e) => e.type === 'm.room.message')
    .reverse()
    .map((e) => ({ sender: e.sender as string, body: e.content.body as string }));
}

/** Every expected message once, each sender's in its order. */
function assertDelivered(seen: Array<{ sender: string; body: string }>, expected: Map<string, string[]>, where: string): void {
  for (const [sender, bodies] of expected) {
    const got = seen.filter((m) => m.sender === sender).map((m) => m.body);
    assert.deepEqual(got, bodies, `${where}: the messages of ${sender}, once each and in order`);
  }
  assert.equal(
    seen.length,
    [...expected.values()].reduce((n, b) => n + b.length, 0),
    `${where}: no other message`,
  );
}

describe('federation between a worker deployment and a single-process Myelin', () => {
  let terminator: TlsTerminator;
  let cluster: ProcessCluster;
  let a: FederatingServer;
  let alice: TestUser;
  let bob: { userId: string; token: string };

  before(async () => {
    const tlsPort = await freePort();
    const routerPort = await freePort();
    terminator = await startTlsTerminator({ port: tlsPort, targetPort: routerPort });
    cluster = await startProcessCluster({
      serverName: `localhost:${tlsPort}`,
      persisters: 1,
      generic: 2,
      ephemeral: false,
      routerPort,
      federationSenders: SENDERS,
      mainResources: ['client'],
      mainConfig: { ...LOOPBACK_FEDERATION, public_baseurl: `https://localhost:${tlsPort}/` },
    });
    a = await startFederatingServer();
    alice = await a.hs.createUser('alice', { displayname: 'Alice' });
    const registered = await routerCall(cluster, 'POST', '/_matrix/client/v3/register', undefined, {
      username: 'bob',
      password: 'bob-password',
      auth: { type: 'm.login.dummy' },
    });
    assert.equal(registered.status, 200, registered.text);
    bob = { userId: registered.json.user_id, token: registered.json.access_token };
  });
  after(async () => {
    await a?.stop();
    await cluster?.stop();
    await terminator?.stop();
  });

  let roomOfA: string;
  let roomOfB: string;

  test("B's user joins a room of A; A's user joins a room of B (remote joins both ways)", async () => {
    const createdOnA = await aCall(a, alice, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'On A' });
    assert.equal(createdOnA.status, 200, createdOnA.text);
    roomOfA = createdOnA.json.room_id;
    const joinedA = await routerCall(cluster, 'POST', `/_matrix/client/v3/join/${enc(roomOfA)}?via=${enc(a.serverName)}`, bob.token, {});
    assert.equal(joinedA.status, 200, joinedA.text);

    const createdOnB = await routerCall(cluster, 'POST', '/_matrix/client/v3/createRoom', bob.token, {
      preset: 'public_chat',
      name: 'On B',
    });
    assert.equal(createdOnB.status, 200, createdOnB.text);
    roomOfB = createdOnB.json.room_id;
    const joinedB = await aCall(a, alice, 'POST', `/_matrix/client/v3/join/${enc(roomOfB)}?via=${enc(cluster.serverName)}`, {});
    assert.equal(joinedB.status, 200, joinedB.text);

    // Both servers see both users joined to both rooms.
    for (const roomId of [roomOfA, roomOfB]) {
      for (const userId of [alice.userId, bob.userId]) {
        const path = `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`;
        await eventually(async () => (await aCall(a, alice, 'GET', path)).json?.membership === 'join', `${userId} joined ${roomId} on A`);
        await eventually(
          async () => (await routerCall(cluster, 'GET', path, bob.token)).json?.membership === 'join',
          `${userId} joined ${roomId} on B`,
        );
      }
    }
  });

  test('messages both ways in both rooms arrive once and in order, through worker processes', async () => {
    assert.ok(roomOfA && roomOfB, 'the rooms of the first test');
    const from = cluster.logLines().length;
    const expected = new Map([
      [alice.userId, Array.from({ length: MESSAGES }, (_, i) => `a${i}`)],
      [bob.userId, Array.from({ length: MESSAGES }, (_, i) => `b${i}`)],
    ]);
    for (const roomId of [roomOfA, roomOfB]) {
      // Each user sends in order; the two send at the same time.
      await Promise.all([
        (async () => {
          for (const body of expected.get(alice.userId)!) {
            const res = await aCall(a, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${body}`, {
              msgtype: 'm.text',
              body,
            });
            assert.equal(res.status, 200, res.text);
          }
        })(),
        (async () => {
          for (const body of expected.get(bob.userId)!) {
            const res = await routerCall(cluster, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${body}`, bob.token, {
              msgtype: 'm.text',
              body,
            });
            assert.equal(res.status, 200, res.text);
          }
        })(),
      ]);
    }
    const total = 2 * MESSAGES;
    for (const roomId of [roomOfA, roomOfB]) {
      const onA = (path: string) => aCall(a, alice, 'GET', path);
      const onB = (path: string) => routerCall(cluster, 'GET', path, bob.token);
      await eventually(async () => (await messageBodies(onA, roomId)).length >= total, `every message of ${roomId} on A`, 60_000);
      await eventually(async () => (await messageBodies(onB, roomId)).length >= total, `every message of ${roomId} on B`, 60_000);
      assertDelivered(await messageBodies(onA, roomId), expected, `${roomId} on A`);
      assertDelivered(await messageBodies(onB, roomId), expected, `${roomId} on B`);
    }

    const lines = cluster.logLines().slice(from);
    // Inbound: every transaction from A was taken by a generic worker (main serves no federation).
    const received = lines.filter(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('received transaction ') && l.origin === a.serverName,
    );
    assert.ok(received.length > 0, 'transactions from A were received');
    for (const line of received) assert.match(String(line.instance), /^generic[12]$/, `${line.msg} taken by ${line.instance}`);
    // Outbound: what B sent to A left from the sender A's name hashes to, and from no other process.
    const sent = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(`transaction sent to ${a.serverName} `));
    assert.ok(sent.length > 0, 'transactions were sent to A');
    const owner = senderInstanceFor(a.serverName, SENDERS);
    for (const line of sent) assert.equal(line.instance, owner, `${line.msg} sent by ${line.instance}`);
  });
});
