// Benchmark group `federation`: Myelin ↔ Myelin messages (throughput, latency), inbound `/send`,
// joining a large remote room, and the federation sender catching a destination up.
//
// Myelin ↔ Myelin (`measureMyelinToMyelin`): A is a real `myelin start` process (SQLite, a TLS
// listener), B a Myelin in this process (SQLite, TLS); a user of A sends through A's client API,
// a client of B long-polls B's /sync. The clients keep their TLS connections open, as real clients
// do: a handshake per request (both ends on this machine) would be most of what is measured.
// Throughput: 2,000 messages from 16 concurrent senders, from the first send to the last message
// in B's sync. Latency: 100 messages/s for 10 s, each measured
// from A's answer to the send to B's sync showing it. A 5,000-member room hosted by B (its members
// written straight through B's events writer, 5,000 joins of local users in a public room: no
// accounts needed) is then joined by a user of A: the join request's time, and A's peak RSS
// (VmHWM of /proc/<pid>/status, since the process started).
//
// Inbound `/send` (`measureInboundSend`): a server of the test's own (test/helpers/remote-homeserver.ts)
// joins a room of a Myelin (in this process, SQLite, rc_federation opened wide) and sends 2,000
// messages as 40 transactions of 50 PDUs, one at a time, built and signed beforehand; measured:
// PDUs accepted and persisted per second. The ed25519 verify ceiling of this machine is printed
// beside it (each PDU costs at least one verification).
//
// The catch-up benchmark:
// A Myelin (in this process, SQLite, a TLS listener) and a destination server of the test's own
// (test/helpers/destination-server.ts: its own key, X-Matrix checked on every request) share a
// room. The destination goes down; 10,000 messages are sent in the room; it comes back and, as a
// returning server does, contacts Myelin (a signed request, authenticated by Myelin's request
// authentication, which sends REMOTE_SERVER_UP). Measured: from its return to the last of the
// 10,000 events received, all in order (target: within 30 s), and the catch-up's events per second.
// Both ends run on this machine and in one process, so the figure includes the destination's own
// work (TLS, signature checks).

import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request as undiciRequest } from 'undici';
import { getRoomVersion } from '../src/core/room-versions.js';
import type { JsonObject } from '../src/core/json.js';
import {
  httpsCall,
  LOOPBACK_FEDERATION,
  startFederatingServer,
  type FederatingServer,
  type HttpsAnswer,
} from '../test/helpers/federation.js';
import { TestDestination } from '../test/helpers/destination-server.js';
import { RemoteHomeserver } from '../test/helpers/remote-homeserver.js';
import { createRoomWith, sendText } from '../test/helpers/rooms.js';
import { startServerProcess } from '../test/helpers/server-process.js';
import { figure, measureRate, percentile, type Figure } from './harness.js';

const GROUP = 'federation';
const EVENTS = 10_000;

async function waitUntil(check: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench federation: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function measureFederation(): Promise<Figure[]> {
  return [...(await measureMyelinToMyelin()), ...(await measureInboundSend()), ...(await measureCatchUp())];
}

const enc = encodeURIComponent;
const WIDE_RC_FEDERATION = { rc_federation: { sleep_limit: 1_000_000, reject_limit: 1_000_000, concurrent: 1_000 } };

/** Keep-alive TLS connections for the clients of the Myelin ↔ Myelin measurement (test certificates). */
let clientAgent = new Agent();

type Answer = Pick<HttpsAnswer, 'status' | 'text' | 'json'>;

async function call(baseUrl: string, token: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await undiciRequest(new URL(path, baseUrl), {
    method: method as 'GET' | 'PUT' | 'POST',
    dispatcher: clientAgent,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

function ok(res: Answer, what: string): any {
  if (res.status !== 200) throw new Error(`bench federation: ${what} answered ${res.status}: ${res.text}`);
  return res.json;
}

/** A client of `baseUrl` long-polling /sync; `seen` maps each message body to when the sync showed it. */
function syncingClient(baseUrl: string, token: string) {
  const seen = new Map<string, number>();
  let running = true;
  const filter = enc(JSON.stringify({ room: { timeline: { limit: 5_000 } }, presence: { types: [] } }));
  const loop = (async () => {
    let since = ok(await call(baseUrl, token, 'GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`), 'initial sync').next_batch;
    while (running) {
      const body = ok(
        await call(baseUrl, token, 'GET', `/_matrix/client/v3/sync?timeout=1000&since=${enc(since)}&filter=${filter}`),
        'sync',
      );
      const at = performance.now();
      since = body.next_batch;
      for (const room of Object.values((body.rooms?.join ?? {}) as Record<string, any>)) {
        for (const event of room.timeline?.events ?? []) {
          if (event.type === 'm.room.message' && !seen.has(event.content.body)) seen.set(event.content.body, at);
        }
      }
    }
  })();
  return {
    seen,
    async stop() {
      running = false;
      await loop;
    },
  };
}

export async function measureMyelinToMyelin(): Promise<Figure[]> {
  clientAgent = new Agent({ connections: 64, keepAliveTimeout: 60_000, connect: { rejectUnauthorized: false } });
  const a = await startServerProcess({ federating: { federationConfig: LOOPBACK_FEDERATION } });
  let b: FederatingServer | undefined;
  const figures: Figure[] = [];
  try {
    // rc_federation opened on B: Synapse's default (10 requests a second per origin, then 500 ms
    // delays) would otherwise be what is measured, as it would be between two Synapses.
    b = await startFederatingServer({ config: WIDE_RC_FEDERATION });
    const alice = ok(
      await httpsCall(a.baseUrl, 'POST', '/_matrix/client/v3/register', {
        body: { username: 'alice', password: 'alice-password', auth: { type: 'm.login.dummy' } },
      }),
      'register',
    ).access_token as string;
    const bob = await b.hs.createUser('bob');
    const roomId = ok(
      await call(a.baseUrl, alice, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' }),
      'createRoom',
    ).room_id;
    ok(await call(b.baseUrl, bob.accessToken, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {}), 'join');
    const client = syncingClient(b.baseUrl, bob.accessToken);
    const send = async (body: string) =>
      ok(
        await call(a.baseUrl, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${body}`, {
          msgtype: 'm.text',
          body,
        }),
        'send',
      );
    try {
      await send('warm-up');
      await waitUntil(() => client.seen.has('warm-up'), 'the warm-up at B', 60_000);

      // Throughput: 16 senders at once.
      const MESSAGES = 2_000;
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < MESSAGES) await send(`t${next++}`);
        }),
      );
      await waitUntil(() => client.seen.size >= MESSAGES + 1, `${MESSAGES} messages at B`, 300_000);
      const seconds = (Math.max(...client.seen.values()) - started) / 1000;
      figures.push(
        figure(
          GROUP,
          `Myelin → Myelin: ${MESSAGES.toLocaleString('en-US')} messages to a syncing client of B`,
          Math.round(MESSAGES / seconds),
          'msg/s',
          {
            op: '>=',
            value: 1_000,
          },
        ),
      );

      // Latency at 100 messages/s, open loop: a send every 10 ms whatever the answers do.
      const RATE_MESSAGES = 1_000;
      const answered = new Map<string, number>();
      const pending: Promise<void>[] = [];
      const t0 = performance.now();
      for (let i = 0; i < RATE_MESSAGES; i++) {
        const due = t0 + i * 10;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const body = `l${i}`;
        pending.push(send(body).then(() => void answered.set(body, performance.now())));
      }
      await Promise.all(pending);
      await waitUntil(() => [...answered.keys()].every((body) => client.seen.has(body)), 'the paced messages at B', 120_000);
      const latencies = [...answered].map(([body, at]) => Math.max(0, client.seen.get(body)! - at));
      figures.push(
        figure(
          GROUP,
          "Myelin → Myelin latency p99 at 100 msg/s (A's send answer → B's /sync)",
          Math.round(percentile(latencies, 99) * 10) / 10,
          'ms',
          {
            op: '<=',
            value: 50,
          },
        ),
        figure(GROUP, 'Myelin → Myelin latency median at 100 msg/s', Math.round(percentile(latencies, 50) * 10) / 10, 'ms'),
      );
    } finally {
      await client.stop();
    }

    // A room of 5,000 members hosted by B, joined by a user of A.
    const MEMBERS = 5_000;
    const host = await b.hs.createUser('host');
    const bigRoom = await createRoomWith(b.hs, host);
    const writer = b.hs.homeserver.services.eventsWriter;
    const built = performance.now();
    let member = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (member < MEMBERS) {
          const userId = `@member${member++}:${b!.serverName}`;
          await writer.sendEvent(bigRoom, { type: 'm.room.member', stateKey: userId, sender: userId, content: { membership: 'join' } });
        }
      }),
    );
    process.stderr.write(`bench federation: ${MEMBERS} members written on B in ${Math.round(performance.now() - built)} ms\n`);
    const joinStarted = performance.now();
    ok(
      await call(a.baseUrl, alice, 'POST', `/_matrix/client/v3/join/${enc(bigRoom)}?via=${enc(b.serverName)}`, {}),
      'join of the big room',
    );
    const joinSeconds = (performance.now() - joinStarted) / 1000;
    const status = readFileSync(`/proc/${a.process.child.pid}/status`, 'utf8');
    const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    figures.push(
      figure(
        GROUP,
        `joining a remote room of ${MEMBERS.toLocaleString('en-US')} members (A joins B's room)`,
        Math.round(joinSeconds * 100) / 100,
        's',
        {
          op: '<=',
          value: 10,
        },
      ),
      figure(GROUP, 'peak RSS of the joining server (A, since its start)', Math.round(peakKb / 1024), 'MB', { op: '<=', value: 300 }),
    );
  } finally {
    await clientAgent.close();
    await b?.stop();
    await a.stop();
  }
  return figures;
}

export async function measureInboundSend(): Promise<Figure[]> {
  const TRANSACTIONS = 40;
  const fed = await startFederatingServer({ config: WIDE_RC_FEDERATION });
  const remote = await RemoteHomeserver.start();
  try {
    const alice = await fed.hs.createUser('alice');
    const roomId = await createRoomWith(fed.hs, alice);
    const { services } = fed.hs.homeserver;
    const dag = remote.room(roomId, getRoomVersion('12')!, { serverName: services.serverName, signingKey: services.signingKey });
    await dag.learnFrom(fed.hs);
    const bob = `@bob:${remote.serverName}`;
    const join = dag.build({ type: 'm.room.member', stateKey: bob, sender: bob, content: { membership: 'join' } });
    ok(await remote.send(fed, 'join', [join.pdu]), 'the remote join');
    const transactions: JsonObject[][] = [];
    for (let t = 0; t < TRANSACTIONS + 1; t++) {
      const pdus: JsonObject[] = [];
      for (let i = 0; i < 50; i++) {
        pdus.push(dag.build({ type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: `in-${t}-${i}` } }).pdu);
      }
      transactions.push(pdus);
    }
    ok(await remote.send(fed, 'warm-up', transactions[0]!), 'the warm-up transaction');
    const started = performance.now();
    for (let t = 1; t <= TRANSACTIONS; t++) {
      const answer = ok(await remote.send(fed, `txn-${t}`, transactions[t]!), `transaction ${t}`);
      const refused = Object.values(answer.pdus as Record<string, JsonObject>).filter((r) => r.error !== undefined);
      if (refused.length > 0)
        throw new Error(`bench federation: transaction ${t} refused ${refused.length} PDUs: ${JSON.stringify(refused[0])}`);
    }
    const seconds = (performance.now() - started) / 1000;
    return [
      figure(
        GROUP,
        'inbound /send: 50-PDU transactions into one room (one process, SQLite)',
        Math.round((TRANSACTIONS * 50) / seconds),
        'PDUs/s',
        {
          op: '>=',
          value: 2_000,
        },
      ),
      measureVerifyCeiling(),
    ];
  } finally {
    await fed.stop();
    await remote.stop();
  }
}

function measureVerifyCeiling(): Figure {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const message = Buffer.alloc(512, 7);
  const signature = sign(null, message, privateKey);
  const rate = measureRate(() => {
    for (let i = 0; i < 100; i++) verify(null, message, publicKey, signature);
    return 100;
  });
  return figure(GROUP, 'ceiling: ed25519 verifications (node:crypto, one core)', Math.round(rate), 'verifications/s');
}

async function measureCatchUp(): Promise<Figure[]> {
  const destination = await TestDestination.start();
  const fed = await startFederatingServer();
  try {
    const alice = await fed.hs.createUser('alice');
    const roomId = await createRoomWith(fed.hs, alice);
    const remote = `@remote:${destination.serverName}`;
    await fed.hs.homeserver.services.eventsWriter.sendEvent(roomId, {
      type: 'm.room.member',
      stateKey: remote,
      sender: remote,
      content: { membership: 'join' },
    });
    await sendText(fed.hs, roomId, alice, 'warm-up');
    await waitUntil(() => destination.messageBodies(roomId).length === 1, 'the warm-up message', 30_000);

    await destination.down();
    const sent: string[] = [];
    let next = 0;
    // Sixteen senders at once, as busy clients would; the room's order is the events writer's.
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < EVENTS) {
          const body = `m${next++}`;
          await sendText(fed.hs, roomId, alice, body);
        }
      }),
    );
    const sender = fed.hs.homeserver.federationSender!;
    await waitUntil(() => (sender.status(destination.serverName)?.consecutiveFailures ?? 0) >= 1, 'a failed attempt', 60_000);
    const res = await fed.hs.homeserver.services.stores.events.roomEventsBetween(
      roomId,
      0,
      Number.MAX_SAFE_INTEGER,
      EVENTS + 100,
      'forwards',
    );
    for (const row of res) if (row.type === 'm.room.message') sent.push(JSON.parse(row.json).content.body);

    await destination.up();
    const started = performance.now();
    const uri = '/_matrix/federation/v1/version';
    await fed.federation.requestAuth.authenticate({
      method: 'GET',
      uri,
      authorization: destination.authorization(fed.serverName, 'GET', uri),
    });
    await waitUntil(() => destination.messageBodies(roomId).length >= sent.length, `${EVENTS} events at the destination`, 300_000);
    const seconds = (performance.now() - started) / 1000;
    const received = destination.messageBodies(roomId);
    const inOrder = received.length === sent.length && received.every((body, i) => body === sent[i]);
    if (!inOrder) process.stderr.write(`bench federation: the ${received.length} events did not arrive once each in order\n`);
    return [
      figure(
        GROUP,
        `catch-up: ${EVENTS.toLocaleString('en-US')} events after an outage, all delivered in order`,
        Math.round(seconds * 100) / 100,
        's',
        {
          op: '<=',
          value: inOrder ? 30 : 0,
        },
      ),
      figure(GROUP, 'catch-up throughput (50-PDU transactions, one in flight)', Math.round((EVENTS / seconds) * 10) / 10, 'events/s'),
    ];
  } finally {
    await fed.stop();
    await destination.stop();
  }
}
