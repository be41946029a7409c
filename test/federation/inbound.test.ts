// The inbound federation API over real HTTPS on loopback, on SQLite and PostgreSQL: a remote
// homeserver played by the test (test/helpers/remote-homeserver.ts: its own key served over TLS,
// the room's DAG in memory, requests signed with X-Matrix) joins a room of a real Myelin through
// `/send`, sends messages and EDUs, reads the room's events and state, and misbehaves in every way
// the spec names (server-server API §Checks performed on receipt of a PDU, §Server Access Control
// Lists, §Request Authentication). What clients see is read with /sync over HTTPS.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { ROUTES } from '../../src/api/registry.js';
import { generateSigningKey } from '../../src/core/signing.js';
import { forEachBackend } from '../helpers/backends.js';
import { httpsCall, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import type { TestUser } from '../helpers/homeserver.js';
import { RemoteHomeserver } from '../helpers/remote-homeserver.js';
import type { RemoteServer } from '../helpers/remote-server.js';
import { createRoomWith } from '../helpers/rooms.js';
import { eventually } from '../helpers/wait.js';

const V12 = getRoomVersion('12')!;
const enc = encodeURIComponent;

function clientCall(fed: FederatingServer, user: TestUser, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(fed.baseUrl, method, path, { headers: { Authorization: `Bearer ${user.accessToken}` }, ...(body ? { body } : {}) });
}

interface SyncedRoom {
  timeline: Array<{ event_id: string; type: string; sender: string; content: JsonObject }>;
  ephemeral: Array<{ type: string; content: JsonObject }>;
  state: Map<string, string>;
}

/** An initial /sync of the room as `user` sees it. */
async function syncRoom(fed: FederatingServer, user: TestUser, roomId: string): Promise<SyncedRoom> {
  const filter = enc(JSON.stringify({ room: { timeline: { limit: 200 } } }));
  const res = await clientCall(fed, user, 'GET', `/_matrix/client/v3/sync?timeout=0&filter=${filter}`);
  assert.equal(res.status, 200, res.text);
  const room = res.json.rooms?.join?.[roomId];
  const stateRes = await clientCall(fed, user, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state`);
  assert.equal(stateRes.status, 200);
  return {
    timeline: room?.timeline?.events ?? [],
    ephemeral: room?.ephemeral?.events ?? [],
    state: new Map(
      (stateRes.json as Array<{ type: string; state_key: string; event_id: string }>).map((e) => [`${e.type}|${e.state_key}`, e.event_id]),
    ),
  };
}

forEachBackend('inbound federation API', (backend) => {
  let fed: FederatingServer;
  let alice: TestUser;
  let remote: RemoteHomeserver;
  let stranger: RemoteHomeserver;
  let roomId: string;
  let dag: RemoteServer;
  let bob: string;
  let carol: string;
  let message: { pdu: JsonObject; event: { eventId: string } };

  before(async () => {
    // rc_federation opened wide: the route sweep below sends hundreds of requests in a row.
    const rcFederation = { sleep_limit: 100_000, reject_limit: 100_000, concurrent: 100 };
    fed = await startFederatingServer({ database: await backend.databaseConfig(), config: { rc_federation: rcFederation } });
    alice = await fed.hs.createUser('alice');
    remote = await RemoteHomeserver.start();
    stranger = await RemoteHomeserver.start();
    bob = `@bob:${remote.serverName}`;
    carol = `@carol:${remote.serverName}`;
    roomId = await createRoomWith(fed.hs, alice);
    const { services } = fed.hs.homeserver;
    dag = remote.room(roomId, V12, { serverName: services.serverName, signingKey: services.signingKey });
    await dag.learnFrom(fed.hs);
  });
  after(async () => {
    await fed.stop();
    await remote.stop();
    await stranger.stop();
  });

  const joinOf = (userId: string) =>
    dag.build({ type: 'm.room.member', stateKey: userId, sender: userId, content: { membership: 'join' } });

  test('a remote server joins through /send and its messages, typing and receipts reach a local client', async () => {
    const joins = [joinOf(bob), joinOf(carol)];
    const joined = await remote.send(
      fed,
      'txn-join',
      joins.map((j) => j.pdu),
    );
    assert.equal(joined.status, 200, joined.text);
    assert.deepEqual(joined.json, { pdus: Object.fromEntries(joins.map((j) => [j.event.eventId, {}])) });

    message = dag.build({ type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'hello from afar' } });
    const answer = await remote.send(
      fed,
      'txn-1',
      [message.pdu],
      [
        { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } },
        {
          edu_type: 'm.receipt',
          content: { [roomId]: { 'm.read': { [bob]: { event_ids: [message.event.eventId], data: { ts: 1_700_000_000_000 } } } } },
        },
        // Not the origin's user: ignored.
        { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice.userId, typing: true } },
        // An unknown EDU type is ignored.
        { edu_type: 'org.example.unknown', content: { anything: true } },
      ],
    );
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json, { pdus: { [message.event.eventId]: {} } });

    const room = await eventually(async () => {
      const synced = await syncRoom(fed, alice, roomId);
      const typing = synced.ephemeral.find((e) => e.type === 'm.typing');
      const receipt = synced.ephemeral.find((e) => e.type === 'm.receipt');
      return typing && receipt ? synced : undefined;
    }, 'typing and receipt in /sync');
    const seen = room.timeline.find((e) => e.event_id === message.event.eventId);
    assert.equal(seen?.content.body, 'hello from afar');
    assert.equal(room.state.get(`m.room.member|${bob}`), joins[0]!.event.eventId);
    assert.deepEqual(room.ephemeral.find((e) => e.type === 'm.typing')?.content, { user_ids: [bob] });
    const receipts = room.ephemeral.find((e) => e.type === 'm.receipt')!.content as Record<string, Record<string, Record<string, unknown>>>;
    assert.ok(receipts[message.event.eventId]?.['m.read']?.[bob], JSON.stringify(receipts));
    // Myelin fetched the remote's key over TLS to check the signatures.
    assert.ok(remote.requests.includes('GET /_matrix/key/v2/server'));
  });

  test('a retried transaction is answered the same without being processed again, also while the first is in flight', async () => {
    // A power-level change Bob may not make: rejected the first time ("rejected earlier" if processed again).
    const forbidden = dag.build({ type: 'm.room.power_levels', stateKey: '', sender: bob, content: { users: { [bob]: 100 } } });
    const again = dag.build({
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'once' },
      prevs: [message.event.eventId],
    });
    const pdus = [forbidden.pdu, again.pdu];
    const [first, concurrent] = await Promise.all([remote.send(fed, 'txn-retry', pdus), remote.send(fed, 'txn-retry', pdus)]);
    const later = await remote.send(fed, 'txn-retry', pdus);
    assert.equal(first.status, 200);
    assert.ok(first.json.pdus[forbidden.event.eventId].error, 'the forbidden change is refused');
    assert.deepEqual(first.json.pdus[again.event.eventId], {});
    assert.deepEqual(concurrent.json, first.json);
    assert.deepEqual(later.json, first.json);
    // Another transaction id with the same PDUs is processed: the refusal is remembered as such.
    const other = await remote.send(fed, 'txn-retry-2', [forbidden.pdu]);
    assert.match(other.json.pdus[forbidden.event.eventId].error, /rejected earlier/);
    const room = await syncRoom(fed, alice, roomId);
    assert.equal(room.timeline.filter((e) => e.content.body === 'once').length, 1);
  });

  test('a server in the room reads /event, /state_ids, /state, /event_auth, /backfill and /get_missing_events', async () => {
    const base = '/_matrix/federation/v1';
    const event = await remote.call(fed, 'GET', `${base}/event/${enc(message.event.eventId)}`);
    assert.equal(event.status, 200, event.text);
    assert.equal(event.json.origin, fed.serverName);
    assert.deepEqual(event.json.pdus, [message.pdu]);

    // The state before the message, as the remote computes it.
    const expectedState = new Set(dag.stateBefore(dag.events.get(message.event.eventId)!.prevEventIds).values());
    const stateIds = await remote.call(fed, 'GET', `${base}/state_ids/${enc(roomId)}?event_id=${enc(message.event.eventId)}`);
    assert.equal(stateIds.status, 200, stateIds.text);
    assert.deepEqual(new Set(stateIds.json.pdu_ids), expectedState);
    const createId = [...expectedState].find((id) => dag.events.get(id)?.type === 'm.room.create')!;
    assert.ok(stateIds.json.auth_chain_ids.includes(createId));

    const state = await remote.call(fed, 'GET', `${base}/state/${enc(roomId)}?event_id=${enc(message.event.eventId)}`);
    assert.equal(state.status, 200, state.text);
    assert.deepEqual(new Set((state.json.pdus as JsonObject[]).map((p) => dag.learn(p).eventId)), expectedState);
    assert.equal(state.json.auth_chain.length, stateIds.json.auth_chain_ids.length);

    // Bob's join is authorised by the create event, the power levels, the join rules.
    const bobJoin = dag.state(message.event.eventId).get(`m.room.member\u0000${bob}` as never)!;
    const auth = await remote.call(fed, 'GET', `${base}/event_auth/${enc(roomId)}/${enc(bobJoin)}`);
    assert.equal(auth.status, 200, auth.text);
    const authTypes = new Set((auth.json.auth_chain as JsonObject[]).map((p) => p.type));
    for (const type of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.member']) assert.ok(authTypes.has(type), type);

    const backfill = await remote.call(fed, 'GET', `${base}/backfill/${enc(roomId)}?v=${enc(message.event.eventId)}&limit=3`);
    assert.equal(backfill.status, 200, backfill.text);
    assert.equal(backfill.json.pdus.length, 3);
    assert.deepEqual(backfill.json.pdus[0], message.pdu);

    const missing = await remote.call(fed, 'POST', `${base}/get_missing_events/${enc(roomId)}`, {
      earliest_events: [bobJoin],
      latest_events: [message.event.eventId],
      limit: 10,
    });
    assert.equal(missing.status, 200, missing.text);
    // Between Bob's join and the message: Carol's join only.
    assert.deepEqual(
      (missing.json.events as JsonObject[]).map((p) => dag.learn(p).eventId),
      [dag.state(message.event.eventId).get(`m.room.member\u0000${carol}` as never)],
    );

    const unknown = await remote.call(fed, 'GET', `${base}/event/${enc('$nosuchevent')}`);
    assert.equal(unknown.status, 404);
  });

  test('a server with nobody in the room is refused with 403 M_FORBIDDEN', async () => {
    const base = '/_matrix/federation/v1';
    for (const [method, path, body] of [
      ['GET', `${base}/event/${enc(message.event.eventId)}`],
      ['GET', `${base}/state_ids/${enc(roomId)}?event_id=${enc(message.event.eventId)}`],
      ['GET', `${base}/state/${enc(roomId)}?event_id=${enc(message.event.eventId)}`],
      ['GET', `${base}/event_auth/${enc(roomId)}/${enc(message.event.eventId)}`],
      ['GET', `${base}/backfill/${enc(roomId)}?v=${enc(message.event.eventId)}&limit=10`],
      ['POST', `${base}/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: [message.event.eventId] }],
    ] as Array<[string, string, JsonObject?]>) {
      const res = await stranger.call(fed, method, path, body);
      assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
      assert.equal(res.json.errcode, 'M_FORBIDDEN');
    }
  });

  test("a server the room's ACL denies gets 403 on room requests, its PDUs and EDUs are ignored", async () => {
    const evil = await RemoteHomeserver.start({ name: 'ip' });
    try {
      const { services } = fed.hs.homeserver;
      const evilDag = evil.room(roomId, V12, { serverName: services.serverName, signingKey: services.signingKey });
      await evilDag.learnFrom(fed.hs);
      const mallory = `@mallory:${evil.serverName}`;
      const join = evilDag.build({ type: 'm.room.member', stateKey: mallory, sender: mallory, content: { membership: 'join' } });
      const joined = await evil.send(fed, 'evil-join', [join.pdu]);
      assert.deepEqual(joined.json, { pdus: { [join.event.eventId]: {} } });

      const acl = await clientCall(fed, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, {
        allow: ['*'],
        deny: [],
        allow_ip_literals: false,
      });
      assert.equal(acl.status, 200, acl.text);
      await evilDag.learnFrom(fed.hs);

      const base = '/_matrix/federation/v1';
      const state = await evil.call(fed, 'GET', `${base}/state_ids/${enc(roomId)}?event_id=${enc(message.event.eventId)}`);
      assert.equal(state.status, 403, state.text);
      assert.equal(state.json.errcode, 'M_FORBIDDEN');
      const event = await evil.call(fed, 'GET', `${base}/event/${enc(message.event.eventId)}`);
      assert.equal(event.status, 403);

      const spam = evilDag.build({ type: 'm.room.message', sender: mallory, content: { msgtype: 'm.text', body: 'acl-denied spam' } });
      const sent = await evil.send(
        fed,
        'evil-1',
        [spam.pdu],
        [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: mallory, typing: true } }],
      );
      assert.equal(sent.status, 200);
      assert.match(sent.json.pdus[spam.event.eventId].error, /server ACL/);
      // The allowed server still reads.
      assert.equal((await remote.call(fed, 'GET', `${base}/event/${enc(message.event.eventId)}`)).status, 200);
      const room = await syncRoom(fed, alice, roomId);
      assert.ok(!room.timeline.some((e) => e.content.body === 'acl-denied spam'));
      const typing = room.ephemeral.find((e) => e.type === 'm.typing')?.content.user_ids as string[] | undefined;
      assert.ok(!typing?.includes(mallory));
    } finally {
      await evil.stop();
    }
  });

  test('a hostile server: forged events, bad requests, malformed bodies are refused or handled, none reach clients, no 5xx', async () => {
    const statuses: number[] = [];
    const sendOne = async (txnId: string, pdu: JsonObject) => {
      const res = await remote.send(fed, txnId, [pdu]);
      statuses.push(res.status);
      assert.equal(res.status, 200, res.text);
      return res.json.pdus as Record<string, { error?: string }>;
    };
    const text = (body: string) => ({ msgtype: 'm.text', body });

    // A forged signature (a signed field changed after signing): dropped.
    const forged = dag.build({
      type: 'm.room.message',
      sender: bob,
      content: text('forged'),
      tamper: (p) => void (p.origin_server_ts = 1),
    });
    assert.match((await sendOne('h-forged', forged.pdu))[forged.event.eventId]?.error ?? '', /signature/);

    // A wrong content hash (content changed after signing): stored redacted, its body never shown.
    const hashed = dag.build({
      type: 'm.room.message',
      sender: bob,
      content: text('original'),
      tamper: (p) => void (p.content = text('swapped')),
    });
    assert.deepEqual((await sendOne('h-hash', hashed.pdu))[hashed.event.eventId], {});

    // A sender of another server, signed only by the remote: dropped.
    const impostor = dag.build({ type: 'm.room.message', sender: '@victim:other.example', content: text('impostor'), tamper: () => {} });
    assert.match((await sendOne('h-sender', impostor.pdu))[impostor.event.eventId]?.error ?? '', /not signed by other\.example/);

    // An event the auth rules reject: a member event for someone else's join.
    const rejected = dag.build({ type: 'm.room.member', stateKey: alice.userId, sender: bob, content: { membership: 'leave' } });
    assert.ok((await sendOne('h-rejected', rejected.pdu))[rejected.event.eventId]?.error);

    // Prev events the remote cannot give: not stored.
    const hidden = dag.build({ type: 'm.room.message', sender: bob, content: text('hidden') });
    dag.withheld.add(hidden.event.eventId);
    const orphan = dag.build({ type: 'm.room.message', sender: bob, content: text('orphan'), prevs: [hidden.event.eventId] });
    assert.match((await sendOne('h-gap', orphan.pdu))[orphan.event.eventId]?.error ?? '', /prev events unavailable/);
    // Myelin asked the remote for them over federation first.
    assert.ok(remote.requests.includes(`POST /_matrix/federation/v1/get_missing_events/${roomId}`), JSON.stringify(remote.requests));

    // Soft failure: Alice bans Carol; Carol's message built on the state before the ban.
    const beforeBan = [message.event.eventId];
    await fed.hs.homeserver.services.eventsWriter.sendEvent(roomId, {
      type: 'm.room.member',
      stateKey: carol,
      sender: alice.userId,
      content: { membership: 'ban' },
    });
    await dag.learnFrom(fed.hs);
    const late = dag.build({ type: 'm.room.message', sender: carol, content: text('after the ban'), prevs: beforeBan });
    assert.deepEqual((await sendOne('h-soft', late.pdu))[late.event.eventId], {});
    assert.equal(
      (await fed.hs.homeserver.services.stores.eventGraph.get([late.event.eventId])).get(late.event.eventId)?.status,
      'soft_failed',
    );

    // An oversized transaction: 400, nothing processed.
    const many = Array.from(
      { length: 51 },
      (_, i) => dag.build({ type: 'm.room.message', sender: bob, content: text(`bulk ${i}`), tamper: () => {} }).pdu,
    );
    const oversized = await remote.send(fed, 'h-big', many);
    statuses.push(oversized.status);
    assert.equal(oversized.status, 400);
    assert.equal(oversized.json.errcode, 'M_BAD_JSON');
    const tooManyEdus = await remote.send(
      fed,
      'h-big-edus',
      [],
      Array.from({ length: 101 }, () => ({ edu_type: 'm.typing', content: {} })),
    );
    statuses.push(tooManyEdus.status);
    assert.equal(tooManyEdus.status, 400);

    // X-Matrix: a wrong key, a wrong destination, an origin whose keys cannot be had: 401.
    const path = `/_matrix/federation/v1/event/${enc(message.event.eventId)}`;
    const wrongKey = generateSigningKey(remote.signingKey.keyId.slice('ed25519:'.length));
    for (const options of [{ key: wrongKey }, { destination: 'elsewhere.example' }, { origin: 'localhost:1' }]) {
      const res = await remote.call(fed, 'GET', path, undefined, options);
      statuses.push(res.status);
      assert.equal(res.status, 401, `${JSON.stringify(Object.keys(options))}: ${res.text}`);
      assert.equal(res.json.errcode, 'M_UNAUTHORIZED');
    }
    const unsigned = await httpsCall(fed.baseUrl, 'GET', path);
    statuses.push(unsigned.status);
    assert.equal(unsigned.status, 401);

    // Malformed bodies and parameters.
    for (const [method, target, body, rawBody] of [
      ['PUT', '/_matrix/federation/v1/send/h-notjson', { pdus: [] }, '{"pdus": ['],
      ['PUT', '/_matrix/federation/v1/send/h-notobject', { pdus: [] }, '[1, 2]'],
      ['PUT', '/_matrix/federation/v1/send/h-badpdus', { pdus: 'nope' }, undefined],
      [
        'PUT',
        '/_matrix/federation/v1/send/h-junk',
        { pdus: [1, 'x', null, { room_id: 5 }, { room_id: roomId }], edus: [7, { edu_type: 3 }] },
      ],
      ['POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: 'x', latest_events: [] }],
      ['GET', `/_matrix/federation/v1/state_ids/${enc(roomId)}`, undefined],
      ['GET', `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=notanid`, undefined],
      ['GET', `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(message.event.eventId)}&limit=x`, undefined],
      ['GET', `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=1&dir=sideways`, undefined],
    ] as Array<[string, string, JsonObject | undefined, string | undefined]>) {
      const res = await remote.call(fed, method, target, body, rawBody === undefined ? {} : { rawBody });
      statuses.push(res.status);
      assert.ok(res.status < 500, `${method} ${target}: ${res.status} ${res.text}`);
      assert.equal(typeof res.json?.errcode === 'string' || res.status === 200, true, res.text);
    }

    assert.ok(
      statuses.every((s) => s < 500),
      JSON.stringify(statuses),
    );
    const room = await syncRoom(fed, alice, roomId);
    const bodies = room.timeline.map((e) => e.content.body);
    for (const body of ['forged', 'original', 'swapped', 'impostor', 'hidden', 'orphan', 'after the ban', 'bulk 0'])
      assert.ok(!bodies.includes(body), `${body} reached a client`);
    const redacted = room.timeline.find((e) => e.event_id === hashed.event.eventId);
    assert.ok(redacted, 'the event with a bad content hash is in the timeline, redacted');
    assert.deepEqual(redacted.content, {});
    assert.equal(room.state.get(`m.room.member|${alice.userId}`) !== rejected.event.eventId, true);
  });

  test('every signed federation route of the registry answers hostile input with a Matrix error, never a 5xx', async () => {
    const values = [roomId, message.event.eventId, '!nosuchroom:elsewhere.example', '$nosuchevent', 'x'.repeat(300), '%E2%82', '..'];
    const bodies: Array<JsonObject | undefined> = [
      undefined,
      {},
      { pdus: [{ room_id: roomId, type: 7 }], edus: [{ edu_type: 'm.receipt', content: { [roomId]: 'x' } }] },
      { earliest_events: [1], latest_events: ['$x'], limit: -1 },
      { limit: 'x', filter: [] },
    ];
    const queries = ['', '?event_id=%24x&v=%24x&limit=1000000&ts=-1&dir=f', '?room_alias=x&user_id=%40x&field=x', '?v=x&limit=1'];
    let requests = 0;
    for (const route of ROUTES.filter((r) => r.auth === 'server')) {
      for (const template of route.paths) {
        for (const [i, value] of values.entries()) {
          for (const query of queries) {
            for (const body of route.method === 'GET' ? [undefined] : bodies) {
              // A new transaction id each time: a repeated one would get the first answer back.
              const path = template.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'txnId' ? `fuzz-${i}-${requests}` : enc(value)));
              const res = await remote.call(fed, route.method, `${path}${query}`, body);
              requests++;
              assert.ok(res.status < 500, `${route.method} ${path}${query} ${JSON.stringify(body)}: ${res.status} ${res.text}`);
              if (res.status !== 200) assert.equal(typeof res.json?.errcode, 'string', res.text);
            }
          }
        }
      }
    }
    assert.ok(requests > 100);
  });

  test('/version, queries, the public room list (off by default) and OpenID tokens', async () => {
    const version = await httpsCall(fed.baseUrl, 'GET', '/_matrix/federation/v1/version');
    assert.equal(version.status, 200);
    assert.equal(version.json.server.name, 'Myelin');

    const alias = `#lobby:${fed.serverName}`;
    assert.equal((await clientCall(fed, alice, 'PUT', `/_matrix/client/v3/directory/room/${enc(alias)}`, { room_id: roomId })).status, 200);
    const directory = await remote.call(fed, 'GET', `/_matrix/federation/v1/query/directory?room_alias=${enc(alias)}`);
    assert.equal(directory.status, 200, directory.text);
    assert.equal(directory.json.room_id, roomId);
    assert.ok(directory.json.servers.includes(remote.serverName));
    const noAlias = await remote.call(fed, 'GET', `/_matrix/federation/v1/query/directory?room_alias=${enc(`#none:${fed.serverName}`)}`);
    assert.equal(noAlias.status, 404);

    const profile = await remote.call(fed, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}&field=displayname`);
    assert.equal(profile.status, 200, profile.text);
    assert.equal(profile.json.displayname, 'alice');
    // An unset field is null, not 404 (Synapse 1.67 fails its client's whole /profile on a 404 for one field).
    const avatar = await remote.call(fed, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}&field=avatar_url`);
    assert.equal(avatar.status, 200, avatar.text);
    assert.deepEqual(avatar.json, { avatar_url: null });
    const nobody = await remote.call(
      fed,
      'GET',
      `/_matrix/federation/v1/query/profile?user_id=${enc(`@nobody:${fed.serverName}`)}&field=avatar_url`,
    );
    assert.equal(nobody.status, 404);

    const rooms = await remote.call(fed, 'GET', '/_matrix/federation/v1/publicRooms');
    assert.equal(rooms.status, 403);
    assert.equal(rooms.json.errcode, 'M_FORBIDDEN');

    const token = await clientCall(fed, alice, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, {});
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.matrix_server_name, fed.serverName);
    const userInfo = await httpsCall(
      fed.baseUrl,
      'GET',
      `/_matrix/federation/v1/openid/userinfo?access_token=${enc(token.json.access_token)}`,
    );
    assert.deepEqual(userInfo.json, { sub: alice.userId });
    const original = token.json.access_token as string;
    const tampered = `${original.slice(0, 20)}${original[20] === 'A' ? 'B' : 'A'}${original.slice(21)}`;
    const bad = await httpsCall(fed.baseUrl, 'GET', `/_matrix/federation/v1/openid/userinfo?access_token=${enc(tampered)}`);
    assert.equal(bad.status, 401);
    assert.equal(bad.json.errcode, 'M_UNKNOWN_TOKEN');

    const ts = await remote.call(fed, 'GET', `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=0&dir=f`);
    assert.equal(ts.status, 200, ts.text);
    assert.equal(typeof ts.json.event_id, 'string');
  });

  test('the public room list is served over federation when allow_public_rooms_over_federation is set', async () => {
    const open = await startFederatingServer({
      database: await backend.databaseConfig(),
      config: { allow_public_rooms_over_federation: true },
    });
    try {
      const res = await remote.call(open, 'GET', '/_matrix/federation/v1/publicRooms?limit=5');
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.chunk, []);
      const post = await remote.call(open, 'POST', '/_matrix/federation/v1/publicRooms', {
        limit: 5,
        filter: { generic_search_term: 'x' },
      });
      assert.equal(post.status, 200, post.text);
      // Synapse sends include_all_networks as a string in this body: taken as the boolean it names
      for (const includeAllNetworks of ['false', 'true']) {
        const synapseStyle = await remote.call(open, 'POST', '/_matrix/federation/v1/publicRooms', {
          include_all_networks: includeAllNetworks,
          limit: 5,
          filter: { generic_search_term: 'x' },
        });
        assert.equal(synapseStyle.status, 200, synapseStyle.text);
      }
      const notABoolean = await remote.call(open, 'POST', '/_matrix/federation/v1/publicRooms', { include_all_networks: 'yes' });
      assert.equal(notABoolean.status, 400);

      // Our clients read it with /publicRooms?server= (GET, and POST with a filter), over federation
      const dave = await open.hs.createUser('dave');
      const created = await clientCall(open, dave, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'Lobby' });
      assert.equal(created.status, 200, created.text);
      const published = await clientCall(open, dave, 'PUT', `/_matrix/client/v3/directory/list/room/${enc(created.json.room_id)}`, {
        visibility: 'public',
      });
      assert.equal(published.status, 200, published.text);
      const listed = await clientCall(fed, alice, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(open.serverName)}&limit=10`);
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(
        listed.json.chunk.map((room: { room_id: string; name: string }) => [room.room_id, room.name]),
        [[created.json.room_id, 'Lobby']],
      );
      const searched = await clientCall(fed, alice, 'POST', `/_matrix/client/v3/publicRooms?server=${enc(open.serverName)}`, {
        filter: { generic_search_term: 'lob' },
        include_all_networks: false,
      });
      assert.equal(searched.status, 200, searched.text);
      assert.equal(searched.json.chunk[0]?.room_id, created.json.room_id);
      const missed = await clientCall(fed, alice, 'POST', `/_matrix/client/v3/publicRooms?server=${enc(open.serverName)}`, {
        filter: { generic_search_term: 'nothing like it' },
      });
      assert.deepEqual(missed.json.chunk, []);
      // a server that does not share its list: 403, as Synapse
      const closed = await clientCall(open, dave, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(fed.serverName)}`);
      assert.equal(closed.status, 403, closed.text);
      assert.equal(closed.json.errcode, 'M_FORBIDDEN');
    } finally {
      await open.stop();
    }
  });
});
