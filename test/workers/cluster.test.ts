// A worker deployment on real PostgreSQL and Redis: writes made through one process reach the
// stream writers that own them and the syncs of every other process.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const enc = encodeURIComponent;

describe('worker deployment: main, two events persisters, two client workers', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({
      workers: ['persister1', 'persister2', 'client1', 'client2'],
      streamWriters: { events: ['persister1', 'persister2'] },
    });
  });
  after(() => cluster?.stop());

  async function register(instance: string, username: string) {
    const res = await cluster.instance(instance).call('POST', '/_matrix/client/v3/register', {
      body: { username, password: `${username}-password`, auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 200, res.text);
    return res.json as { user_id: string; access_token: string };
  }

  test('a message sent through one worker reaches a sync on another, once, in order', async () => {
    const alice = await register('client1', 'alice');
    const bob = await register('client2', 'bob');
    const created = await cluster.instance('client1').call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } });
    assert.equal(created.status, 200, created.text);
    const roomId: string = created.json.room_id;
    const joined = await cluster.instance('client2').call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.access_token });
    assert.equal(joined.status, 200, joined.text);
    const first = await cluster.instance('client2').call('GET', '/_matrix/client/v3/sync', { token: bob.access_token });
    assert.equal(first.status, 200, first.text);
    let since: string = first.json.next_batch;
    for (let i = 0; i < 5; i++) {
      const sent = await cluster.instance('client1').call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${i}`, {
        token: alice.access_token,
        body: { msgtype: 'm.text', body: `hello ${i}` },
      });
      assert.equal(sent.status, 200, sent.text);
    }
    const bodies: string[] = [];
    const deadline = Date.now() + 20_000;
    while (bodies.length < 5 && Date.now() < deadline) {
      const res = await cluster.instance('client2').call('GET', `/_matrix/client/v3/sync?since=${enc(since)}&timeout=5000`, { token: bob.access_token });
      assert.equal(res.status, 200, res.text);
      since = res.json.next_batch;
      for (const e of res.json.rooms?.join?.[roomId]?.timeline?.events ?? []) if (e.type === 'm.room.message') bodies.push(e.content.body);
    }
    assert.deepEqual(bodies, ['hello 0', 'hello 1', 'hello 2', 'hello 3', 'hello 4']);
  });

  test('rooms land on both persisters', async () => {
    const carol = await register('client1', 'carol');
    for (let i = 0; i < 8; i++) {
      const res = await cluster.instance('client1').call('POST', '/_matrix/client/v3/createRoom', { token: carol.access_token, body: {} });
      assert.equal(res.status, 200, res.text);
    }
    const db = cluster.instance('main').homeserver.database;
    const rows = await db.all<{ instance_name: string; n: number }>("SELECT instance_name, COUNT(*) AS n FROM events WHERE type = 'm.room.create' GROUP BY instance_name");
    const byInstance = Object.fromEntries(rows.map((r) => [r.instance_name, Number(r.n)]));
    assert.ok((byInstance.persister1 ?? 0) > 0 && (byInstance.persister2 ?? 0) > 0, JSON.stringify(byInstance));
    assert.equal(byInstance.main, undefined, 'main writes no events');
  });
});
