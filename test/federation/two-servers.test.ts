// Two real Myelins federating over TLS on loopback (issue 11, test 1), with matrix-js-sdk users on
// both sides: joins by id and by alias, 200 messages sent at once both ways, typing, receipts,
// presence and display names, and invites, rejections, kicks, bans, unbans and leaves across the
// two servers, each seen on both. End-to-end encryption and to-device: two-servers-e2ee.test.ts;
// concurrent state changes: two-servers-state.test.ts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MatrixClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { forEachBackend } from '../helpers/backends.js';
import { startFederatingServer, type FederatingServer } from '../helpers/federation.js';
import {
  call,
  enc,
  membershipSeenBy,
  ok,
  rawSync,
  registerAccount,
  startClient,
  stopClients,
  syncTimelineUntil,
  type Account,
} from '../helpers/federation-clients.js';
import { eventually, waitFor } from '../helpers/wait.js';

const INCLUDE_LEAVE = { filter: JSON.stringify({ room: { include_leave: true } }) };

(logger as unknown as { setLevel(level: string): void }).setLevel('silent');

after(() => {
  // matrix-js-sdk leaves timers behind after stopClient (each request's abort timer); everything
  // here is finished, so leave once the runner has reported.
  setTimeout(() => process.exit(), 2000).unref();
});

forEachBackend('two Myelins federating, with matrix-js-sdk users on both', (backend) => {
  let a: FederatingServer;
  let b: FederatingServer;
  let alice: Account; // on A
  let bob: Account; // on B
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  let roomId: string; // A's public room, joined by bob by id

  before(async () => {
    a = await startFederatingServer({ database: await backend.databaseConfig() });
    b = await startFederatingServer({ database: await backend.databaseConfig() });
    alice = await registerAccount(a, 'alice');
    bob = await registerAccount(b, 'bob');
    aliceClient = await startClient(alice);
    bobClient = await startClient(bob);
  });
  after(async () => {
    stopClients();
    await b?.stop();
    await a?.stop();
  });

  test('join by room id with via: both clients see the other user joined', async () => {
    roomId = (await aliceClient.createRoom({ name: 'Across', preset: 'public_chat' as never })).room_id;
    await bobClient.joinRoom(roomId, { viaServers: [a.serverName] });
    await waitFor(aliceClient, () => aliceClient.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'alice to see bob');
    await waitFor(bobClient, () => bobClient.getRoom(roomId)?.getMember(alice.userId)?.membership === 'join', 'bob to see alice');
    assert.equal(bobClient.getRoom(roomId)?.name, 'Across');
  });

  test('join by alias of the other server (resolved with /query/directory)', async () => {
    const carol = await registerAccount(b, 'carol-alias');
    const created = await ok(
      call(alice, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: 'lobby', name: 'Lobby' }),
    );
    const alias = `#lobby:${a.serverName}`;
    const joined = await ok(call(carol, 'POST', `/_matrix/client/v3/join/${enc(alias)}`, {}));
    assert.equal(joined.room_id, created.room_id);
    await membershipSeenBy([alice, carol], created.room_id, carol.userId, 'join');
  });

  test('100 messages from each side at once arrive on the other side once each, in each sender order', async () => {
    const sinceA = (await rawSync(alice)).next_batch as string;
    const sinceB = (await rawSync(bob)).next_batch as string;
    const sendAll = async (account: Account, prefix: string) => {
      for (let i = 0; i < 100; i++) {
        await ok(
          call(account, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${prefix}-${i}`, {
            msgtype: 'm.text',
            body: `${prefix} ${i}`,
          }),
        );
      }
    };
    const bodies = (events: any[], prefix: string) =>
      events.filter((e) => e.type === 'm.room.message' && String(e.content?.body).startsWith(prefix)).map((e) => e.content.body);
    const read = (viewer: Account, since: string) =>
      syncTimelineUntil(viewer, roomId, since, (got) => bodies(got, 'from-').length >= 200, `${viewer.userId} to sync 200 messages`);
    // Both users' syncs run while both send.
    const [, , onA, onB] = await Promise.all([sendAll(alice, 'from-a'), sendAll(bob, 'from-b'), read(alice, sinceA), read(bob, sinceB)]);

    const expectedA = Array.from({ length: 100 }, (_, i) => `from-a ${i}`);
    const expectedB = Array.from({ length: 100 }, (_, i) => `from-b ${i}`);
    for (const [viewer, { events, next }] of [
      [alice, onA],
      [bob, onB],
    ] as const) {
      // One more sync, a little later: a duplicate would come after the 200th.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const filter = JSON.stringify({ room: { timeline: { limit: 100 }, rooms: [roomId] } });
      const later = await rawSync(viewer, { since: next, filter });
      const all = [...events, ...(later.rooms?.join?.[roomId]?.timeline.events ?? [])];
      assert.deepEqual(bodies(all, 'from-a'), expectedA, `${viewer.userId}: A's messages once each, in order`);
      assert.deepEqual(bodies(all, 'from-b'), expectedB, `${viewer.userId}: B's messages once each, in order`);
      const ids = all.map((e) => e.event_id);
      assert.equal(new Set(ids).size, ids.length, `${viewer.userId}: no event twice`);
    }
    // Both servers hold the same 200 events in the room's history.
    const history = async (viewer: Account) => {
      const res = await ok(call(viewer, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=400`));
      return new Set((res.chunk as any[]).filter((e) => e.type === 'm.room.message').map((e) => e.event_id as string));
    };
    const [historyA, historyB] = await Promise.all([history(alice), history(bob)]);
    for (const id of historyA) assert.ok(historyB.has(id), `${id} on B`);
    assert.ok(historyA.size >= 200);
    assert.equal(historyA.size, historyB.size);
  });

  test('typing crosses both ways', async () => {
    await bobClient.sendTyping(roomId, true, 20_000);
    await waitFor(aliceClient, () => aliceClient.getRoom(roomId)?.getMember(bob.userId)?.typing === true, 'alice to see bob typing');
    await aliceClient.sendTyping(roomId, true, 20_000);
    await waitFor(bobClient, () => bobClient.getRoom(roomId)?.getMember(alice.userId)?.typing === true, 'bob to see alice typing');
    await bobClient.sendTyping(roomId, false, 0);
    await waitFor(aliceClient, () => aliceClient.getRoom(roomId)?.getMember(bob.userId)?.typing === false, 'alice to see bob stop');
  });

  test('read receipts cross both ways', async () => {
    const inTimeline = (client: MatrixClient, eventId: string) =>
      client
        .getRoom(roomId)
        ?.getLiveTimeline()
        .getEvents()
        .find((e) => e.getId() === eventId);
    // Each reads the other's latest message (a user's own later message would count as read).
    const { event_id: fromA } = await aliceClient.sendTextMessage(roomId, 'read me, bob');
    const onB = await waitFor(bobClient, () => inTimeline(bobClient, fromA), "bob to have alice's message");
    await bobClient.sendReadReceipt(onB);
    await waitFor(aliceClient, () => aliceClient.getRoom(roomId)?.getEventReadUpTo(bob.userId) === fromA, "alice to see bob's receipt");
    const { event_id: fromB } = await bobClient.sendTextMessage(roomId, 'read me, alice');
    const onA = await waitFor(aliceClient, () => inTimeline(aliceClient, fromB), "alice to have bob's message");
    await aliceClient.sendReadReceipt(onA);
    await waitFor(bobClient, () => bobClient.getRoom(roomId)?.getEventReadUpTo(alice.userId) === fromB, "bob to see alice's receipt");
  });

  test('presence crosses both ways', async () => {
    await aliceClient.setPresence({ presence: 'unavailable', status_msg: 'away on A' });
    await waitFor(bobClient, () => bobClient.getUser(alice.userId)?.presenceStatusMsg === 'away on A', "bob to see alice's presence");
    assert.equal(bobClient.getUser(alice.userId)?.presence, 'unavailable');
    await bobClient.setPresence({ presence: 'online', status_msg: 'here on B' });
    await waitFor(aliceClient, () => aliceClient.getUser(bob.userId)?.presenceStatusMsg === 'here on B', "alice to see bob's presence");
    assert.equal(aliceClient.getUser(bob.userId)?.presence, 'online');
  });

  test('display-name changes cross both ways', async () => {
    await bobClient.setDisplayName('Bob of B');
    await waitFor(aliceClient, () => aliceClient.getRoom(roomId)?.getMember(bob.userId)?.name === 'Bob of B', "alice to see bob's name");
    await aliceClient.setDisplayName('Alice of A');
    await waitFor(bobClient, () => bobClient.getRoom(roomId)?.getMember(alice.userId)?.name === 'Alice of A', "bob to see alice's name");
  });

  test("A's room: invite → accept, kick, ban, unban, rejoin, leave and invite → reject of B's users, seen on both servers", async () => {
    const carol = await registerAccount(b, 'carol');
    const dave = await registerAccount(b, 'dave');
    const room = (action: string) => `/_matrix/client/v3/rooms/${enc(roomId)}/${action}`;
    const seen = (target: Account, membership: string) => membershipSeenBy([alice, bob], roomId, target.userId, membership);

    await ok(call(alice, 'POST', room('invite'), { user_id: carol.userId }));
    await seen(carol, 'invite');
    await eventually(async () => (await rawSync(carol)).rooms?.invite?.[roomId], "carol's invite in her sync");
    await ok(call(carol, 'POST', room('join'), {}));
    await seen(carol, 'join');

    await ok(call(alice, 'POST', room('kick'), { user_id: carol.userId, reason: 'out' }));
    await seen(carol, 'leave');
    await eventually(async () => (await rawSync(carol, INCLUDE_LEAVE)).rooms?.leave?.[roomId], 'the kick in carol’s sync');

    await ok(call(alice, 'POST', room('ban'), { user_id: carol.userId }));
    await seen(carol, 'ban');
    const refused = await call(carol, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    assert.equal(refused.status, 403, refused.text);

    await ok(call(alice, 'POST', room('unban'), { user_id: carol.userId }));
    await seen(carol, 'leave');
    await ok(call(carol, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {}));
    await seen(carol, 'join');
    await ok(call(carol, 'POST', room('leave'), {}));
    await seen(carol, 'leave');

    await ok(call(alice, 'POST', room('invite'), { user_id: dave.userId }));
    await seen(dave, 'invite');
    await eventually(async () => (await rawSync(dave)).rooms?.invite?.[roomId], "dave's invite in his sync");
    await ok(call(dave, 'POST', room('leave'), {}));
    await seen(dave, 'leave');
  });

  test("B's room: A's users invited, accepting, kicked, banned by B's user, seen on both servers", async () => {
    const erin = await registerAccount(a, 'erin');
    const frank = await registerAccount(a, 'frank');
    const bRoom = (await ok(call(bob, 'POST', '/_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'On B' })))
      .room_id as string;
    const room = (action: string) => `/_matrix/client/v3/rooms/${enc(bRoom)}/${action}`;

    await ok(call(bob, 'POST', room('invite'), { user_id: erin.userId }));
    await eventually(async () => (await rawSync(erin)).rooms?.invite?.[bRoom], "erin's invite in her sync");
    await ok(call(erin, 'POST', room('join'), {}));
    await membershipSeenBy([bob, erin], bRoom, erin.userId, 'join');

    await ok(call(bob, 'POST', room('invite'), { user_id: frank.userId }));
    await membershipSeenBy([bob, erin], bRoom, frank.userId, 'invite');
    await ok(call(frank, 'POST', room('leave'), {}));
    await membershipSeenBy([bob, erin], bRoom, frank.userId, 'leave');

    await ok(call(bob, 'POST', room('ban'), { user_id: frank.userId }));
    await membershipSeenBy([bob, erin], bRoom, frank.userId, 'ban');
    await ok(call(bob, 'POST', room('unban'), { user_id: frank.userId }));
    await membershipSeenBy([bob, erin], bRoom, frank.userId, 'leave');

    await ok(call(bob, 'POST', room('kick'), { user_id: erin.userId }));
    await membershipSeenBy([bob], bRoom, erin.userId, 'leave');
    await eventually(async () => (await rawSync(erin, INCLUDE_LEAVE)).rooms?.leave?.[bRoom], 'the kick in erin’s sync');
  });
});
