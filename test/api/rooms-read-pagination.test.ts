// GET /rooms/{roomId}/messages over real HTTP: paging through long histories in both directions
// without gaps or duplicates, `to`, tokens that survive a restart, filters and lazy-loaded
// members, redacted events, transaction ids, and the errors.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const MESSAGES = 300;

async function createRoom(hs: TestHomeserver, user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
  const res = await hs.call('POST', '/_matrix/client/v3/createRoom', {
    token: user.accessToken,
    body: { preset: 'private_chat', ...body },
  });
  assert.equal(res.status, 200, res.text);
  return res.json.room_id as string;
}

async function sendText(hs: TestHomeserver, user: TestUser, roomId: string, body: string, txnId = `t${Math.random()}`): Promise<string> {
  const res = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txnId}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
  });
  assert.equal(res.status, 200, res.text);
  return res.json.event_id as string;
}

function messagesPath(roomId: string, params: Record<string, string | number>): string {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]));
  return `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${query.toString()}`;
}

/** Pages until `end` disappears; returns every event and the number of requests. */
async function pageAll(
  hs: TestHomeserver,
  token: string,
  roomId: string,
  params: Record<string, string | number>,
): Promise<{ events: any[]; pages: number }> {
  const events: any[] = [];
  let from: string | undefined = params.from === undefined ? undefined : String(params.from);
  let pages = 0;
  for (;;) {
    const res = await hs.call('GET', messagesPath(roomId, { ...params, ...(from !== undefined ? { from } : {}) }), { token });
    assert.equal(res.status, 200, res.text);
    pages += 1;
    if (from !== undefined) assert.equal(res.json.start, from, 'start equals from');
    events.push(...res.json.chunk);
    if (res.json.end === undefined) return { events, pages };
    assert.ok(pages < 1000, 'pagination terminates');
    from = res.json.end;
  }
}

const bodies = (events: any[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body as string);

forEachBackend('/messages pagination', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let roomId: string;
  const sent: string[] = [];

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    roomId = await createRoom(hs, alice);
    const writer = hs.homeserver.services.eventsWriter;
    for (let i = 0; i < MESSAGES; i++) {
      const body = `message ${i}`;
      await writer.sendEvent(roomId, { type: 'm.room.message', sender: alice.userId, content: { msgtype: 'm.text', body } });
      sent.push(body);
    }
  });
  after(() => hs.stop());

  test('backwards from the end through 300 messages: every one, once, newest first, and end disappears', async () => {
    const { events, pages } = await pageAll(hs, alice.accessToken, roomId, { dir: 'b', limit: 7 });
    assert.deepEqual(bodies(events), [...sent].reverse());
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, 'no duplicates');
    assert.equal(events.at(-1).type, 'm.room.create', 'history ends at the create event');
    assert.ok(pages >= Math.ceil(events.length / 7));
  });

  test('forwards from the start through 300 messages, oldest first', async () => {
    const { events } = await pageAll(hs, alice.accessToken, roomId, { dir: 'f', limit: 13 });
    assert.deepEqual(bodies(events), sent);
    assert.equal(events[0].type, 'm.room.create');
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length);
  });

  test('`to` bounds the walk in both directions', async () => {
    const first = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 100 }), { token: alice.accessToken });
    const middle = first.json.end as string; // after the 100 newest
    const back = await pageAll(hs, alice.accessToken, roomId, { dir: 'b', limit: 9, to: middle });
    assert.deepEqual(bodies(back.events), [...sent].reverse().slice(0, 100));
    const forward = await pageAll(hs, alice.accessToken, roomId, { dir: 'f', limit: 9, from: middle });
    assert.deepEqual(bodies(forward.events), sent.slice(MESSAGES - 100));
    const start = await hs.call('GET', messagesPath(roomId, { dir: 'f', limit: 1 }), { token: alice.accessToken });
    const upTo = await pageAll(hs, alice.accessToken, roomId, { dir: 'f', limit: 11, from: start.json.end, to: middle });
    assert.deepEqual(bodies(upTo.events), sent.slice(0, MESSAGES - 100));
  });

  test('a page that ends exactly at the start of the room has no end', async () => {
    const all = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 1000 }), { token: alice.accessToken });
    assert.equal(all.status, 200);
    assert.equal(all.json.end, undefined);
    const total = all.json.chunk.length;
    const exact = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: total }), { token: alice.accessToken });
    assert.equal(exact.json.chunk.length, total);
    assert.equal(exact.json.end, undefined, 'nothing is left, so no end');
  });

  test('limit defaults to 10 and is capped at 1000; limit=0 returns an empty chunk with an end', async () => {
    const byDefault = await hs.call('GET', messagesPath(roomId, { dir: 'b' }), { token: alice.accessToken });
    assert.equal(byDefault.json.chunk.length, 10);
    const huge = await hs.call('GET', messagesPath(roomId, { dir: 'f', limit: 5000 }), { token: alice.accessToken });
    assert.equal(huge.status, 200);
    assert.ok(huge.json.chunk.length <= 1000);
    const zero = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 0 }), { token: alice.accessToken });
    assert.deepEqual(zero.json.chunk, []);
    assert.equal(typeof zero.json.end, 'string');
  });

  test('a sync token and a Synapse topological token are accepted as from', async () => {
    const newest = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 1 }), { token: alice.accessToken });
    const position = Number(String(newest.json.start).slice(1));
    const syncToken = `s${position}_0_0_0_0_0_0_0`;
    const viaSync = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 2, from: syncToken }), { token: alice.accessToken });
    assert.equal(viaSync.status, 200, viaSync.text);
    assert.equal(viaSync.json.start, syncToken);
    assert.deepEqual(bodies(viaSync.json.chunk), [sent[MESSAGES - 1], sent[MESSAGES - 2]]);
    const viaTopological = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 2, from: `t999-${position}` }), {
      token: alice.accessToken,
    });
    assert.deepEqual(bodies(viaTopological.json.chunk), [sent[MESSAGES - 1], sent[MESSAGES - 2]]);
  });

  test('a filter matches by type and sender; lazy_load_members puts the senders in state', async () => {
    const filter = JSON.stringify({ types: ['m.room.message'], lazy_load_members: true });
    const res = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 5, filter }), { token: alice.accessToken });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.chunk.length, 5);
    assert.ok(res.json.chunk.every((e: any) => e.type === 'm.room.message'));
    assert.deepEqual(
      res.json.state.map((e: any) => [e.type, e.state_key]),
      [['m.room.member', alice.userId]],
    );
    const nobody = JSON.stringify({ senders: ['@nobody:test.local'] });
    const none = await hs.call('GET', messagesPath(roomId, { dir: 'b', filter: nobody }), { token: alice.accessToken });
    assert.deepEqual(none.json.chunk, []);
    assert.equal(none.json.end, undefined);
    const noState = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 1 }), { token: alice.accessToken });
    assert.equal(noState.json.state, undefined, 'state only with lazy loading');
  });

  test('a sparse filter still pages through the whole room', async () => {
    const filter = JSON.stringify({ types: ['m.room.create'] });
    const { events } = await pageAll(hs, alice.accessToken, roomId, { dir: 'b', limit: 1, filter });
    assert.deepEqual(
      events.map((e) => e.type),
      ['m.room.create'],
    );
  });

  test('errors: dir missing or wrong, bad tokens, bad limit, bad filter, no token, unknown room', async () => {
    const t = alice.accessToken;
    const expect = async (path: string, status: number, errcode: string, token: string | null = t) => {
      const res = await hs.call('GET', path, token === null ? {} : { token });
      assert.equal(res.status, status, `${path}: ${res.text}`);
      assert.equal(res.json.errcode, errcode, path);
    };
    const base = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages`;
    await expect(base, 400, 'M_MISSING_PARAM');
    await expect(`${base}?dir=x`, 400, 'M_INVALID_PARAM');
    await expect(`${base}?dir=b&from=nonsense`, 400, 'M_INVALID_PARAM');
    await expect(`${base}?dir=b&to=s1_2`, 400, 'M_INVALID_PARAM');
    await expect(`${base}?dir=b&limit=-1`, 400, 'M_INVALID_PARAM');
    await expect(`${base}?dir=b&limit=ten`, 400, 'M_INVALID_PARAM');
    await expect(`${base}?dir=b&filter=${encodeURIComponent('{nope')}`, 400, 'M_NOT_JSON');
    await expect(`${base}?dir=b&filter=${encodeURIComponent('{"types":"m.room.message"}')}`, 400, 'M_BAD_JSON');
    await expect(`${base}?dir=b`, 401, 'M_MISSING_TOKEN', null);
    await expect(`${base}?dir=b`, 401, 'M_UNKNOWN_TOKEN', 'not-a-token');
    await expect(`/_matrix/client/v3/rooms/${encodeURIComponent('!unknown:test.local')}/messages?dir=b`, 403, 'M_FORBIDDEN');
  });
});

forEachBackend('/messages event details', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    roomId = await createRoom(hs, alice, { preset: 'public_chat' });
    assert.equal(
      (await hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} })).status,
      200,
    );
  });
  after(() => hs.stop());

  test('redacted events are served redacted, with redacted_because', async () => {
    const eventId = await sendText(hs, bob, roomId, 'oops, a secret');
    const redact = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/r1`, {
      token: alice.accessToken,
      body: { reason: 'spam' },
    });
    assert.equal(redact.status, 200, redact.text);
    const res = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 5 }), { token: bob.accessToken });
    const redacted = res.json.chunk.find((e: any) => e.event_id === eventId);
    assert.deepEqual(redacted.content, {});
    assert.equal(redacted.unsigned.redacted_because.event_id, redact.json.event_id);
    assert.equal(redacted.unsigned.redacted_because.content.reason, 'spam');
  });

  test('transaction_id is echoed to the sending device only; membership is in unsigned', async () => {
    const eventId = await sendText(hs, alice, roomId, 'with a txn', 'txn-42');
    const mine = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 3 }), { token: alice.accessToken });
    const own = mine.json.chunk.find((e: any) => e.event_id === eventId);
    assert.equal(own.unsigned.transaction_id, 'txn-42');
    assert.equal(own.unsigned.membership, 'join');
    assert.equal(own.room_id, roomId);
    const otherDevice = await hs.homeserver.services.auth.createSession(alice.userId);
    const elsewhere = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 3 }), { token: otherDevice.accessToken });
    assert.equal(elsewhere.json.chunk.find((e: any) => e.event_id === eventId).unsigned.transaction_id, undefined);
    const theirs = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 3 }), { token: bob.accessToken });
    assert.equal(theirs.json.chunk.find((e: any) => e.event_id === eventId).unsigned.transaction_id, undefined);
  });

  test('state events in the timeline carry prev_content', async () => {
    await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic`, {
      token: alice.accessToken,
      body: { topic: 'one' },
    });
    await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic`, {
      token: alice.accessToken,
      body: { topic: 'two' },
    });
    const res = await hs.call('GET', messagesPath(roomId, { dir: 'b', limit: 1 }), { token: bob.accessToken });
    const [topic] = res.json.chunk;
    assert.equal(topic.content.topic, 'two');
    assert.deepEqual(topic.unsigned.prev_content, { topic: 'one' });
  });
});

forEachBackend('/messages tokens across a restart', (backend) => {
  test('an end token from before a restart continues the walk on the same database', async () => {
    const database = await backend.databaseConfig();
    const first = await backend.startHomeserver({ database });
    const alice = await first.createUser('alice');
    const roomId = await createRoom(first, alice);
    const sentBodies: string[] = [];
    for (let i = 0; i < 25; i++) {
      sentBodies.push(`before restart ${i}`);
      await sendText(first, alice, roomId, sentBodies[i]!);
    }
    const page = await first.call('GET', messagesPath(roomId, { dir: 'b', limit: 10 }), { token: alice.accessToken });
    assert.equal(page.status, 200);
    const end = page.json.end as string;
    await first.stop();

    const second = await backend.startHomeserver({ database });
    try {
      const rest = await pageAll(second, alice.accessToken, roomId, { dir: 'b', limit: 6, from: end });
      assert.deepEqual(bodies(rest.events), [...sentBodies].reverse().slice(10));
      const forward = await pageAll(second, alice.accessToken, roomId, { dir: 'f', limit: 6, from: end });
      assert.deepEqual(bodies(forward.events), sentBodies.slice(15));
    } finally {
      await second.stop();
    }
  });
});
