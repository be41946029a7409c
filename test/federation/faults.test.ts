// Faults between two Myelins, end to end (issue 11, test 3): a server that was down gets what it
// missed soon after it comes back, with nothing done on its side; a sender killed with SIGKILL
// (a real process) while its user sends delivers, after its restart, every event it acknowledged
// to its client; and a destination that stays down is retried with growing pauses, not hammered.

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { httpsCall, LOOPBACK_FEDERATION, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import type { TestUser } from '../helpers/homeserver.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/wait.js';

const enc = encodeURIComponent;

function call(baseUrl: string, token: string, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(baseUrl, method, path, { headers: { Authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) });
}

/** The room's messages as a client of `baseUrl` reads them, oldest first. */
async function messages(baseUrl: string, token: string, roomId: string): Promise<Array<{ eventId: string; body: string }>> {
  const res = await call(baseUrl, token, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1000`);
  assert.equal(res.status, 200, res.text);
  return (res.json.chunk as any[])
    .filter((e) => e.type === 'm.room.message')
    .reverse()
    .map((e) => ({ eventId: e.event_id as string, body: e.content.body as string }));
}

async function createAndJoin(host: { baseUrl: string; token: string }, joiner: { baseUrl: string; token: string }, via: string) {
  const created = await call(host.baseUrl, host.token, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' });
  assert.equal(created.status, 200, created.text);
  const roomId: string = created.json.room_id;
  const joined = await call(joiner.baseUrl, joiner.token, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(via)}`, {});
  assert.equal(joined.status, 200, joined.text);
  return roomId;
}

/** A TCP server on `port` that counts connections and closes each at once: a host whose homeserver is down. */
async function connectionCounter(port: number): Promise<{ attempts: number[]; server: Server }> {
  const attempts: number[] = [];
  const server = createServer((socket: Socket) => {
    attempts.push(Date.now());
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return { attempts, server };
}

describe('faults between two Myelins', () => {
  let a: FederatingServer;
  let b: FederatingServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  before(async () => {
    a = await startFederatingServer();
    b = await startFederatingServer();
    alice = await a.hs.createUser('alice');
    bob = await b.hs.createUser('bob');
    roomId = await createAndJoin(
      { baseUrl: a.baseUrl, token: alice.accessToken },
      { baseUrl: b.baseUrl, token: bob.accessToken },
      a.serverName,
    );
    const warm = await call(a.baseUrl, alice.accessToken, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/warm`, {
      msgtype: 'm.text',
      body: 'warm-up',
    });
    assert.equal(warm.status, 200, warm.text);
    await eventually(
      async () => (await messages(b.baseUrl, bob.accessToken, roomId)).some((m) => m.body === 'warm-up'),
      'the warm-up on B',
    );
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  test('B stopped while A sends 50 messages; B started again gets all 50 in order within a minute, nothing done on B', async () => {
    await b.stop();
    const bodies = Array.from({ length: 50 }, (_, i) => `down-${i}`);
    for (const body of bodies) {
      const res = await call(a.baseUrl, alice.accessToken, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${body}`, {
        msgtype: 'm.text',
        body,
      });
      assert.equal(res.status, 200, res.text);
    }
    const sender = a.hs.homeserver.federationSender!;
    await eventually(() => (sender.status(b.serverName)?.consecutiveFailures ?? 0) >= 1, "A's failed attempt to reach B");

    b = await startFederatingServer({ port: b.port, dir: b.hs.dir, certificate: b.certificate });
    await eventually(
      async () => (await messages(b.baseUrl, bob.accessToken, roomId)).filter((m) => m.body.startsWith('down-')).length >= bodies.length,
      "the 50 messages at B's client",
      60_000,
    );
    const seen = (await messages(b.baseUrl, bob.accessToken, roomId)).filter((m) => m.body.startsWith('down-')).map((m) => m.body);
    assert.deepEqual(seen, bodies, 'once each, in order');
  });

  test('a destination that stays down is retried with growing pauses, not at every new event', async () => {
    await b.stop();
    const counter = await connectionCounter(b.port);
    try {
      const sender = a.hs.homeserver.federationSender!;
      const start = Date.now();
      // A message a second for 40 s: each new event must not bring an attempt forward.
      for (let i = 0; Date.now() - start < 40_000; i++) {
        const res = await call(
          a.baseUrl,
          alice.accessToken,
          'PUT',
          `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gone-${i}`,
          {
            msgtype: 'm.text',
            body: `gone-${i}`,
          },
        );
        assert.equal(res.status, 200, res.text);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      const attempts = [...counter.attempts];
      // Pauses of 5 s, 10 s, 20 s (with jitter) fit at most four or five attempts into 40 s.
      assert.ok(attempts.length >= 2, `B's host was tried (${attempts.length} connections)`);
      assert.ok(attempts.length <= 8, `B's host was not hammered: ${attempts.length} connections in 40 s`);
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
      if (gaps.length >= 2) assert.ok(gaps.at(-1)! > gaps[0]!, `the pauses grow: ${gaps.join(', ')} ms`);
      assert.ok((sender.status(b.serverName)?.consecutiveFailures ?? 0) >= 2, 'A counts the failures');
    } finally {
      await new Promise((resolve) => counter.server.close(resolve));
    }
  });
});

describe('a sender killed with SIGKILL', () => {
  let a: ServerProcess;
  let b: FederatingServer;

  before(async () => {
    a = await startServerProcess({ federating: { federationConfig: LOOPBACK_FEDERATION } });
    b = await startFederatingServer();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  test('after A is killed while its user sends and restarted, B has every event A acknowledged to its client', async () => {
    const registered = await httpsCall(a.baseUrl, 'POST', '/_matrix/client/v3/register', {
      body: { username: 'carol', password: 'carol-password', auth: { type: 'm.login.dummy' } },
    });
    assert.equal(registered.status, 200, registered.text);
    const carol: string = registered.json.access_token;
    const dan = await b.hs.createUser('dan');
    const roomId = await createAndJoin({ baseUrl: a.baseUrl, token: carol }, { baseUrl: b.baseUrl, token: dan.accessToken }, a.serverName);

    const acknowledged: string[] = [];
    let killed = false;
    const exited = new Promise((resolve) => a.process.child.once('exit', resolve));
    for (let i = 0; ; i++) {
      let res: HttpsAnswer;
      try {
        res = await call(a.baseUrl, carol, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/k${i}`, {
          msgtype: 'm.text',
          body: `k${i}`,
        });
      } catch {
        break; // the connection died with A: not acknowledged
      }
      if (res.status !== 200) break;
      acknowledged.push(res.json.event_id as string);
      if (acknowledged.length === 30 && !killed) {
        killed = true;
        // Killed while more sends follow at once; some events are then still being sent to B.
        a.process.child.kill('SIGKILL');
      }
      assert.ok(i < 1_000, 'A died');
    }
    await exited;
    assert.ok(acknowledged.length >= 30);
    await a.restart();
    await eventually(
      async () => {
        const ids = new Set((await messages(b.baseUrl, dan.accessToken, roomId)).map((m) => m.eventId));
        return acknowledged.every((id) => ids.has(id));
      },
      'every acknowledged event at B',
      60_000,
    );
    const order = (await messages(b.baseUrl, dan.accessToken, roomId)).map((m) => m.eventId).filter((id) => acknowledged.includes(id));
    assert.deepEqual(order, acknowledged, 'in the order A acknowledged them');
  });
});
