// matrix-js-sdk 37.5.0 against the real `bin/myelin start` process: the flows a person chatting
// through Element would exercise, waiting on the SDK's own sync-driven events.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, EventType, MsgType, PendingEventOrdering, type MatrixClient, type MatrixEvent, type Room } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { forEachBackend } from '../helpers/backends.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { waitFor } from '../helpers/wait.js';

(logger as unknown as { setLevel(level: string): void }).setLevel('error');

async function register(baseUrl: string, username: string): Promise<MatrixClient> {
  const anonymous = createClient({ baseUrl });
  const registered = await anonymous.registerRequest({ username, password: `pw-${username}-secret`, auth: { type: 'm.login.dummy' } });
  const client = createClient({
    baseUrl,
    userId: registered.user_id,
    accessToken: registered.access_token!,
    deviceId: registered.device_id!,
  });
  // Detached local echoes (as Element uses): the live timeline then shows the server's order.
  await client.startClient({ initialSyncLimit: 8, pendingEventOrdering: PendingEventOrdering.Detached });
  await waitFor(client, () => client.isInitialSyncComplete(), `${username}'s initial sync`, 60_000);
  return client;
}

function messagesOf(room: Room | null): string[] {
  return (room?.getLiveTimeline().getEvents() ?? [])
    .filter((e) => e.getType() === EventType.RoomMessage && !e.isRedacted())
    .map((e) => String(e.getContent().body));
}

forEachBackend('matrix-js-sdk 37.5.0 against myelin', (backend) => {
  let server: ServerProcess;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let roomId: string;

  before(async () => {
    server = await startServerProcess({ config: { database: await backend.databaseConfig() } });
    alice = await register(server.baseUrl, 'alice');
    bob = await register(server.baseUrl, 'bob');
  });

  after(async () => {
    alice?.stopClient();
    bob?.stopClient();
    await server?.stop();
  });

  test('alice creates a room and invites bob; bob sees the invite and joins', async () => {
    const created = await alice.createRoom({ name: 'Project', preset: 'private_chat' as never, invite: [bob.getUserId()!] });
    roomId = created.room_id;
    await waitFor(bob, () => bob.getRoom(roomId)?.getMyMembership() === 'invite', 'bob to see the invite');
    await bob.joinRoom(roomId);
    await waitFor(alice, () => alice.getRoom(roomId)?.getMember(bob.getUserId()!)?.membership === 'join', 'alice to see bob join');
    assert.equal(bob.getRoom(roomId)?.name, 'Project');
  });

  test('messages arrive in order, each once', async () => {
    for (let i = 0; i < 10; i++) {
      const sender = i % 2 === 0 ? alice : bob;
      await sender.sendMessage(roomId, { msgtype: MsgType.Text, body: `m${i}` });
    }
    const expected = Array.from({ length: 10 }, (_, i) => `m${i}`);
    await waitFor(alice, () => messagesOf(alice.getRoom(roomId)).length >= 10, 'alice to see 10 messages');
    await waitFor(bob, () => messagesOf(bob.getRoom(roomId)).length >= 10, 'bob to see 10 messages');
    assert.deepEqual(messagesOf(alice.getRoom(roomId)), expected);
    assert.deepEqual(messagesOf(bob.getRoom(roomId)), expected);
  });

  test('typing notifications and read receipts cross over', async () => {
    await alice.sendTyping(roomId, true, 10_000);
    await waitFor(bob, () => bob.getRoom(roomId)?.getMember(alice.getUserId()!)?.typing === true, 'bob to see alice typing');
    await alice.sendTyping(roomId, false, 0);
    await waitFor(bob, () => bob.getRoom(roomId)?.getMember(alice.getUserId()!)?.typing === false, 'bob to see alice stop typing');

    const last = bob.getRoom(roomId)!.getLiveTimeline().getEvents().at(-1)!;
    await bob.sendReadReceipt(last);
    await waitFor(alice, () => alice.getRoom(roomId)?.getUsersReadUpTo(last).includes(bob.getUserId()!), 'alice to see bob’s receipt');
  });

  test('a display name change reaches the other user as a member event', async () => {
    await alice.setDisplayName('Alice Cooper');
    await waitFor(bob, () => bob.getRoom(roomId)?.getMember(alice.getUserId()!)?.name === 'Alice Cooper', 'bob to see the new name');
  });

  test('paginating back through 300 messages yields each once, in order', async () => {
    const pageRoom = await alice.createRoom({ name: 'History', preset: 'public_chat' as never });
    for (let i = 0; i < 300; i++) await alice.sendMessage(pageRoom.room_id, { msgtype: MsgType.Text, body: `h${i}` });
    await bob.joinRoom(pageRoom.room_id);
    const room = await waitFor(bob, () => bob.getRoom(pageRoom.room_id) ?? undefined, 'bob to have the history room');
    const timeline = room.getLiveTimeline();
    for (let page = 0; page < 40; page++) {
      const more = await bob.paginateEventTimeline(timeline, { backwards: true, limit: 50 });
      if (!more) break;
    }
    const bodies = messagesOf(room);
    assert.equal(bodies.length, 300);
    assert.deepEqual(
      bodies,
      Array.from({ length: 300 }, (_, i) => `h${i}`),
    );
  });

  test('redaction reaches the other user', async () => {
    const { event_id } = await bob.sendMessage(roomId, { msgtype: MsgType.Text, body: 'regrettable' });
    await waitFor(alice, () => alice.getRoom(roomId)?.findEventById(event_id), 'alice to see the message');
    await bob.redactEvent(roomId, event_id);
    await waitFor(alice, () => alice.getRoom(roomId)?.findEventById(event_id)?.isRedacted(), 'alice to see it redacted');
  });

  test('bob leaves, comes back, is banned and cannot rejoin', async () => {
    await bob.leave(roomId);
    await waitFor(alice, () => alice.getRoom(roomId)?.getMember(bob.getUserId()!)?.membership === 'leave', 'alice to see bob leave');
    await alice.invite(roomId, bob.getUserId()!);
    await bob.joinRoom(roomId);
    await alice.ban(roomId, bob.getUserId()!, 'enough');
    await waitFor(bob, () => bob.getRoom(roomId)?.getMyMembership() === 'ban', 'bob to see the ban');
    await assert.rejects(
      bob.joinRoom(roomId),
      (err: { errcode?: string; httpStatus?: number }) => err.errcode === 'M_FORBIDDEN' && err.httpStatus === 403,
    );
  });

  test('the timeline events the SDK received are well formed', () => {
    const events: MatrixEvent[] = alice.getRoom(roomId)!.getLiveTimeline().getEvents();
    for (const e of events) {
      assert.match(e.getId()!, /^\$/);
      assert.equal(e.getRoomId(), roomId);
      assert.ok(e.getTs() > 0);
    }
  });
});
