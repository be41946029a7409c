// Stopping and starting the real server on the same data: tokens handed out before the restart
// keep working, and a client retrying a send with the same transaction id gets the same event.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

forEachBackend('a restart on the same data', (backend) => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ config: { database: await backend.databaseConfig() } });
  });
  after(async () => {
    await server?.stop();
  });

  async function call(method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(`${server.baseUrl}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as any };
  }

  test('sync and pagination tokens and transaction ids survive a restart', async () => {
    const registered = await call('POST', '/_matrix/client/v3/register', undefined, {
      username: 'restarter',
      password: 'a-long-password',
      auth: { type: 'm.login.dummy' },
    });
    assert.equal(registered.status, 200);
    const token: string = registered.json.access_token;
    const roomId: string = (await call('POST', '/_matrix/client/v3/createRoom', token, { name: 'durable' })).json.room_id;
    const room = encodeURIComponent(roomId);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++)
      sent.push(
        (
          await call('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/txn-${i}`, token, {
            msgtype: 'm.text',
            body: `before ${i}`,
          })
        ).json.event_id,
      );
    const synced = await call(
      'GET',
      `/_matrix/client/v3/sync?filter=${encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 5 } } }))}`,
      token,
    );
    const nextBatch: string = synced.json.next_batch;
    const prevBatch: string = synced.json.rooms.join[roomId].timeline.prev_batch;
    const page = await call('GET', `/_matrix/client/v3/rooms/${room}/messages?dir=b&limit=5&from=${encodeURIComponent(prevBatch)}`, token);
    const pageEnd: string = page.json.end;

    assert.equal(await server.stop(), 0);
    await server.restart();

    // The same access token, the same room.
    const retried = await call('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/txn-19`, token, {
      msgtype: 'm.text',
      body: 'before 19',
    });
    assert.equal(retried.status, 200);
    assert.equal(retried.json.event_id, sent[19], 'a retried txn id returns the original event');

    await call('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/after-0`, token, { msgtype: 'm.text', body: 'after restart' });
    const incremental = await call('GET', `/_matrix/client/v3/sync?since=${encodeURIComponent(nextBatch)}`, token);
    assert.equal(incremental.status, 200);
    const bodies = incremental.json.rooms.join[roomId].timeline.events.map((e: { content: { body: string } }) => e.content.body);
    assert.deepEqual(bodies, ['after restart'], 'the old sync token picks up exactly the new message');

    const again = await call('GET', `/_matrix/client/v3/rooms/${room}/messages?dir=b&limit=5&from=${encodeURIComponent(prevBatch)}`, token);
    assert.deepEqual(
      again.json.chunk.map((e: { event_id: string }) => e.event_id),
      page.json.chunk.map((e: { event_id: string }) => e.event_id),
    );
    const further = await call('GET', `/_matrix/client/v3/rooms/${room}/messages?dir=b&limit=5&from=${encodeURIComponent(pageEnd)}`, token);
    assert.deepEqual(
      further.json.chunk.map((e: { content: { body: string } }) => e.content.body),
      ['before 9', 'before 8', 'before 7', 'before 6', 'before 5'],
    );
  });
});
