// The federation sender end to end, over real TLS on loopback: a real Myelin
// (`startFederatingServer`) sends to homeservers of the test's own (`TestDestination`), which
// check every request's X-Matrix signature against Myelin's published key and record what arrives.
//
// Simulated here: the inbound join API does not exist yet, so a destination's user is made a
// member of a Myelin room by writing its join event through Myelin's own events writer (signed by
// Myelin, not by the destination). Everything after that — which servers are in the room, the
// transactions, retries, catch-up — is the real path.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
import { FederationDestinationsStore } from '../../src/storage/federation-destinations-store.js';
import { httpsCall, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import { TestDestination } from '../helpers/destination-server.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { createRoomWith, sendText } from '../helpers/rooms.js';
import { eventually } from '../helpers/wait.js';

/** Short retry timings, so the tests wait seconds, not minutes. */
const FAST_RETRIES = { federation: { destination_min_retry_interval: '200ms', destination_max_retry_interval: '2s' } };

/** Simulated join (see the top of the file): `@<localpart>:<destination>` joins the room. */
async function joinRemote(hs: TestHomeserver, roomId: string, destination: TestDestination, localpart = 'remote'): Promise<string> {
  const userId = `@${localpart}:${destination.serverName}`;
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: userId,
    sender: userId,
    content: { membership: 'join' },
  });
  return userId;
}

/** A client-server API request to the federating server (its listener serves TLS). */
export function clientCall(fed: FederatingServer, user: TestUser, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(fed.baseUrl, method, path, {
    headers: { Authorization: `Bearer ${user.accessToken}` },
    ...(body === undefined ? {} : { body }),
  });
}

async function sendMessage(fed: FederatingServer, user: TestUser, roomId: string, body: string): Promise<string> {
  const txnId = `t${Math.random().toString(36).slice(2)}`;
  const res = await clientCall(fed, user, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txnId}`, {
    msgtype: 'm.text',
    body,
  });
  assert.equal(res.status, 200, res.text);
  return (res.json as { event_id: string }).event_id;
}

/** The room's message bodies in Myelin's own (timeline) order. */
async function timelineBodies(fed: FederatingServer, user: TestUser, roomId: string): Promise<string[]> {
  const res = await clientCall(fed, user, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=f&limit=1000`);
  assert.equal(res.status, 200, res.text);
  return (res.json as { chunk: JsonObject[] }).chunk
    .filter((e) => e.type === 'm.room.message')
    .map((e) => (e.content as JsonObject).body as string);
}

function assertEachOnce(received: string[], expected: string[], what: string): void {
  assert.deepEqual(received, expected, `${what}: received ${received.length} of ${expected.length}, in order, each once`);
}

describe('federation sender: PDUs', () => {
  let fed: FederatingServer;
  let alice: TestUser;

  before(async () => {
    fed = await startFederatingServer({ config: FAST_RETRIES });
    alice = await fed.hs.createUser('alice');
  });
  after(async () => {
    await fed?.stop();
  });

  test('messages sent by local users arrive once, in order, at most 50 PDUs per transaction, signed', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      // A slow destination lets messages pile up into full transactions.
      dest.delayMs = 30;
      const sent: string[] = [];
      for (let batch = 0; batch < 15; batch++) {
        await Promise.all(Array.from({ length: 8 }, (_, i) => sendMessage(fed, alice, roomId, `m${batch * 8 + i}`)));
      }
      for (let i = 0; i < 15 * 8; i++) sent.push(`m${i}`);
      const order = await timelineBodies(fed, alice, roomId);
      assert.deepEqual([...order].sort(), [...sent].sort());
      await eventually(() => dest.messageBodies(roomId).length >= order.length, 'every message at the destination');
      assertEachOnce(dest.messageBodies(roomId), order, 'messages');
      assert.ok(
        dest.transactions.every((t) => t.pdus.length <= 50),
        'no transaction over 50 PDUs',
      );
      assert.ok(
        dest.transactions.some((t) => t.pdus.length > 1),
        'PDUs are batched while a transaction is in flight',
      );
      assert.deepEqual(dest.refusedSignatures, [], 'every request carried a valid X-Matrix signature');
      assert.ok(dest.transactions.every((t) => t.origin === fed.serverName));
      const ids = dest.transactions.map((t) => t.txnId);
      assert.equal(new Set(ids).size, ids.length, 'transaction ids are unique');
      // The remote member's join (written as the destination's user) is not ours to send.
      assert.ok(dest.pdus().every((p) => (p.sender as string).endsWith(`:${fed.serverName}`)));
    } finally {
      await dest.stop();
    }
  });

  test('a destination that is down while 50 messages are sent gets all of them, in order, once it is back', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      await sendText(fed.hs, roomId, alice, 'before');
      await eventually(() => dest.messageBodies(roomId).length === 1, 'the first message');
      await dest.down();
      const expected = ['before'];
      for (let i = 0; i < 50; i++) {
        await sendMessage(fed, alice, roomId, `down${i}`);
        expected.push(`down${i}`);
      }
      const sender = fed.hs.homeserver.federationSender!;
      await eventually(() => (sender.status(dest.serverName)?.consecutiveFailures ?? 0) >= 2, 'failed attempts while it is down');
      await dest.up();
      // No user action: the next retry finds it up.
      await eventually(() => dest.messageBodies(roomId).length >= expected.length, 'every message after the outage');
      assertEachOnce(dest.messageBodies(roomId), expected, 'messages');
      assert.ok(dest.transactions.every((t) => t.pdus.length <= 50));
      await eventually(() => sender.status(dest.serverName)?.mode === 'live', 'the queue back to live');
    } finally {
      await dest.stop();
    }
  });

  test('a destination answering 500 is retried with the same transaction, with growing pauses, and not hammered', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      dest.behaviour = { status: 500 };
      await sendText(fed.hs, roomId, alice, 'refused for now');
      await eventually(() => dest.attempts.length >= 1, 'a first attempt');
      // Minimum 200 ms, doubling (×0.8–1.2) up to 2 s: about 6 attempts in 3 s. Without a backoff
      // it would be hundreds; a slow machine only makes fewer.
      const first = dest.attempts.length;
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const inWindow = dest.attempts.length - first;
      assert.ok(inWindow >= 1, 'retried');
      assert.ok(inWindow <= 10, `${inWindow} attempts in 3 s`);
      await eventually(() => dest.attempts.length >= 5, 'five attempts');
      assert.equal(new Set(dest.attempts).size, 1, 'every attempt carries the same transaction id');
      const timings = await new FederationDestinationsStore(fed.hs.homeserver.database).retryTimings(dest.serverName);
      assert.ok(timings && timings.retryIntervalMs >= 4 * 200, `the pause grew: ${timings?.retryIntervalMs} ms`);
      assert.ok(timings.retryIntervalMs <= 2_000, 'up to the ceiling');
      assert.ok(timings.failureTs !== undefined);
      dest.behaviour = 'ok';
      await eventually(() => dest.messageBodies(roomId).length === 1, 'delivered once it answers 200');
      assert.equal(dest.transactions[0]!.txnId, dest.attempts[0], 'the same transaction, finally accepted');
      const after = await new FederationDestinationsStore(fed.hs.homeserver.database).retryTimings(dest.serverName);
      assert.deepEqual(after, { failureTs: undefined, retryLastTs: 0, retryIntervalMs: 0 }, 'the retry state is reset');
    } finally {
      await dest.stop();
    }
  });

  test('a destination that refuses a transaction with 400 is not sent it again, and later events still go', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      dest.behaviour = { status: 400, errcode: 'M_BAD_JSON' };
      await sendText(fed.hs, roomId, alice, 'refused');
      await eventually(() => dest.attempts.length >= 1, 'the attempt');
      dest.behaviour = 'ok';
      await sendText(fed.hs, roomId, alice, 'accepted');
      await eventually(() => dest.messageBodies(roomId).includes('accepted'), 'the next message');
      assert.deepEqual(dest.messageBodies(roomId), ['accepted']);
      assert.equal(new Set(dest.attempts).size, dest.attempts.length, 'the refused transaction was not repeated');
    } finally {
      await dest.stop();
    }
  });

  test('only servers with members in the room get its events; a kicked server gets its kick', async () => {
    const inRoom = await TestDestination.start();
    const elsewhere = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      const otherRoom = await createRoomWith(fed.hs, alice);
      const member = await joinRemote(fed.hs, roomId, inRoom);
      await joinRemote(fed.hs, otherRoom, elsewhere);
      await sendText(fed.hs, roomId, alice, 'for the room');
      await fed.hs.homeserver.services.eventsWriter.sendEvent(roomId, {
        type: 'm.room.member',
        stateKey: member,
        sender: alice.userId,
        content: { membership: 'leave', reason: 'kicked' },
      });
      await sendText(fed.hs, roomId, alice, 'after the kick');
      await sendText(fed.hs, otherRoom, alice, 'for the other room');
      await eventually(() => elsewhere.messageBodies(otherRoom).length === 1, 'the other room message');
      await eventually(
        () => inRoom.pdus().some((p) => p.type === 'm.room.member' && p.state_key === member),
        'the kick at the kicked server',
      );
      assert.deepEqual(inRoom.messageBodies(), ['for the room']);
      assert.deepEqual(elsewhere.messageBodies(), ['for the other room']);
    } finally {
      await inRoom.stop();
      await elsewhere.stop();
    }
  });
});

describe('federation sender: a destination that contacts us is retried at once', () => {
  let fed: FederatingServer;
  let alice: TestUser;

  before(async () => {
    // An hour before the first retry: only the contact can explain a prompt delivery.
    fed = await startFederatingServer({ config: { federation: { destination_min_retry_interval: '1h' } } });
    alice = await fed.hs.createUser('alice');
  });
  after(async () => {
    await fed?.stop();
  });

  test('REMOTE_SERVER_UP after an authenticated request ends the wait', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      await dest.down();
      await sendText(fed.hs, roomId, alice, 'while down');
      const sender = fed.hs.homeserver.federationSender!;
      await eventually(() => (sender.status(dest.serverName)?.consecutiveFailures ?? 0) >= 1, 'a failed attempt');
      assert.ok((sender.status(dest.serverName)?.retryIntervalMs ?? 0) >= 3_600_000);
      await dest.up();
      // The destination "contacts us": a request signed by it, authenticated the way the inbound
      // federation API will (that API is built later; its authentication is already here).
      const uri = '/_matrix/federation/v1/version';
      await fed.federation.requestAuth.authenticate({ method: 'GET', uri, authorization: dest.authorization(fed.serverName, 'GET', uri) });
      await eventually(() => dest.messageBodies(roomId).length === 1, 'the message, long before the hour');
      assert.equal(sender.status(dest.serverName)?.consecutiveFailures, 0);
    } finally {
      await dest.stop();
    }
  });

  test('a destination that fails just after contacting us and then contacts us again is retried (a quick restart)', async () => {
    const dest = await TestDestination.start();
    try {
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      const uri = '/_matrix/federation/v1/version';
      const contact = () =>
        fed.federation.requestAuth.authenticate({ method: 'GET', uri, authorization: dest.authorization(fed.serverName, 'GET', uri) });
      // It contacts us while all is well, then goes down and comes back within seconds.
      await contact();
      await dest.down();
      await sendText(fed.hs, roomId, alice, 'while restarting');
      const sender = fed.hs.homeserver.federationSender!;
      await eventually(() => (sender.status(dest.serverName)?.consecutiveFailures ?? 0) >= 1, 'a failed attempt');
      await dest.up();
      await contact();
      await eventually(() => dest.messageBodies(roomId).length === 1, 'the message, long before the hour');
    } finally {
      await dest.stop();
    }
  });
});

describe('federation sender: restarts', () => {
  test('events not acknowledged before a restart are sent after it; acknowledged ones are not sent again', async () => {
    const dest = await TestDestination.start();
    let fed = await startFederatingServer({ config: FAST_RETRIES });
    try {
      const alice = await fed.hs.createUser('alice');
      const roomId = await createRoomWith(fed.hs, alice);
      await joinRemote(fed.hs, roomId, dest);
      const expected: string[] = [];
      for (let i = 0; i < 5; i++) {
        await sendMessage(fed, alice, roomId, `acked${i}`);
        expected.push(`acked${i}`);
      }
      await eventually(() => dest.messageBodies(roomId).length === 5, 'the first five');
      await dest.down();
      for (let i = 0; i < 10; i++) {
        await sendMessage(fed, alice, roomId, `pending${i}`);
        expected.push(`pending${i}`);
      }
      await eventually(
        () => (fed.hs.homeserver.federationSender!.status(dest.serverName)?.consecutiveFailures ?? 0) >= 1,
        'a failed attempt',
      );
      const { port, hs } = fed;
      await fed.stop();
      await dest.up();
      fed = await startFederatingServer({ config: FAST_RETRIES, port, dir: hs.dir });
      await eventually(() => dest.messageBodies(roomId).length >= expected.length, 'the pending messages after the restart');
      assertEachOnce(dest.messageBodies(roomId), expected, 'messages across the restart');
    } finally {
      await fed.stop();
      await dest.stop();
    }
  });

  test('a server that joined while the sender was not reading gets the events written meanwhile', async () => {
    const dest = await TestDestination.start();
    let fed = await startFederatingServer({ config: FAST_RETRIES });
    try {
      const alice = await fed.hs.createUser('alice');
      const roomId = await createRoomWith(fed.hs, alice);
      await sendText(fed.hs, roomId, alice, 'before the join');
      // As if the process had stopped (or crashed) before its sender read what follows: the sender
      // is stopped, and its read position is left where it was.
      await fed.hs.homeserver.federationSender!.stop();
      await joinRemote(fed.hs, roomId, dest);
      await sendText(fed.hs, roomId, alice, 'two');
      await sendText(fed.hs, roomId, alice, 'three');
      const { port, hs } = fed;
      await fed.stop();
      fed = await startFederatingServer({ config: FAST_RETRIES, port, dir: hs.dir });
      await eventually(() => dest.messageBodies(roomId).length >= 2, 'the messages after the restart');
      assert.deepEqual(dest.messageBodies(roomId), ['two', 'three']);
    } finally {
      await fed.stop();
      await dest.stop();
    }
  });
});
