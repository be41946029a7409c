// The federation sender in worker mode: destinations are shared among the instances listed in
// `federation_sender_instances` by a stable hash of their name, main sends nothing when the list
// is set, and `REMOTE_SERVER_UP` heard by any process reaches the instance that sends to that
// server. The cluster runs in this process on real PostgreSQL and Redis (test/helpers/cluster.ts);
// remote memberships are simulated as in sender.test.ts.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodePublicKey, parseSigningKeyFile } from '../../src/core/signing.js';
import { FederationShard, senderInstanceFor, senderTag } from '../../src/federation/sender/index.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { TestDestination } from '../helpers/destination-server.js';
import { LOOPBACK_FEDERATION } from '../helpers/federation.js';
import { eventually } from '../helpers/wait.js';

describe('federation sender sharding', () => {
  test('each destination has one sender, the same every time, spread over the instances', () => {
    const instances = ['fs1', 'fs2', 'fs3'];
    const counts = new Map<string, number>();
    for (let i = 0; i < 3_000; i++) {
      const destination = `server${i}.example`;
      const owner = senderInstanceFor(destination, instances);
      assert.equal(senderInstanceFor(destination, [...instances]), owner, 'stable');
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
      const owners = instances.filter((name) => new FederationShard(name, instances).owns(destination));
      assert.deepEqual(owners, [owner], 'exactly one instance owns it');
    }
    for (const name of instances) assert.ok((counts.get(name) ?? 0) > 800, `${name} sends to ${counts.get(name)} of 3000`);
    assert.equal(senderInstanceFor('any.example', ['main']), 'main');
    assert.throws(() => senderInstanceFor('any.example', []));
  });

  test('transaction ids tell instances apart without naming them', () => {
    assert.notEqual(senderTag('fs1'), senderTag('fs2'));
    assert.match(senderTag('federation_sender1'), /^[0-9a-f]{6}$/);
  });
});

describe('federation sender on two workers', () => {
  const SENDERS = ['fs1', 'fs2'];
  let cluster: TestCluster;
  const destinations: TestDestination[] = [];

  before(async () => {
    cluster = await startTestCluster({
      workers: ['fs1', 'fs2', 'client1'],
      // An hour before a first retry: only REMOTE_SERVER_UP can explain a prompt delivery.
      config: { federation_sender_instances: SENDERS, ...LOOPBACK_FEDERATION, federation: { destination_min_retry_interval: '1h' } },
    });
    // Destinations until each sender has at least two.
    const [key] = parseSigningKeyFile(readFileSync(join(cluster.dir, 'signing.key'), 'utf8'));
    while (SENDERS.some((name) => destinations.filter((d) => senderInstanceFor(d.serverName, SENDERS) === name).length < 2)) {
      const destination = await TestDestination.start();
      // The cluster's name does not resolve: its key is given to the destination.
      destination.trustKey({
        serverName: 'cluster.test',
        keyId: key!.keyId,
        publicKey: encodePublicKey(key!),
        validUntilTs: Date.now() + 86_400_000,
        old: false,
      });
      destinations.push(destination);
      assert.ok(destinations.length < 30);
    }
  });
  after(async () => {
    await cluster?.stop();
    for (const destination of destinations) await destination.stop();
  });

  test('each destination gets every message from the instance its name hashes to; main sends nothing', async () => {
    assert.equal(cluster.instance('main').homeserver.federationSender, undefined);
    assert.equal(cluster.instance('client1').homeserver.federationSender, undefined);
    for (const name of SENDERS) assert.ok(cluster.instance(name).homeserver.federationSender);

    const registered = await cluster.instance('client1').call('POST', '/_matrix/client/v3/register', {
      body: { username: 'alice', password: 'alice-password', auth: { type: 'm.login.dummy' } },
    });
    assert.equal(registered.status, 200, registered.text);
    const alice = registered.json as { user_id: string; access_token: string };
    const created = await cluster
      .instance('client1')
      .call('POST', '/_matrix/client/v3/createRoom', { token: alice.access_token, body: { preset: 'public_chat' } });
    assert.equal(created.status, 200, created.text);
    const roomId: string = created.json.room_id;
    const writer = cluster.instance('main').homeserver.services.eventsWriter;
    for (const destination of destinations) {
      const userId = `@remote:${destination.serverName}`;
      await writer.sendEvent(roomId, { type: 'm.room.member', stateKey: userId, sender: userId, content: { membership: 'join' } });
    }
    const expected: string[] = [];
    for (let i = 0; i < 10; i++) {
      const sent = await cluster
        .instance('client1')
        .call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w${i}`, {
          token: alice.access_token,
          body: { msgtype: 'm.text', body: `w${i}` },
        });
      assert.equal(sent.status, 200, sent.text);
      expected.push(`w${i}`);
    }
    for (const destination of destinations) {
      await eventually(() => destination.messageBodies(roomId).length >= expected.length, `the messages at ${destination.serverName}`);
      assert.deepEqual(destination.messageBodies(roomId), expected);
      const tag = senderTag(senderInstanceFor(destination.serverName, SENDERS));
      assert.ok(
        destination.transactions.every((t) => t.txnId.split('.')[0]!.endsWith(tag)),
        `${destination.serverName} hears only from ${senderInstanceFor(destination.serverName, SENDERS)}`,
      );
    }
    for (const name of SENDERS) {
      const owned = cluster
        .instance(name)
        .homeserver.federationSender!.destinations()
        .map((d) => d.destination)
        .sort();
      assert.deepEqual(
        owned,
        destinations
          .filter((d) => senderInstanceFor(d.serverName, SENDERS) === name)
          .map((d) => d.serverName)
          .sort(),
      );
    }
  });

  test('REMOTE_SERVER_UP from a process that does not send reaches the sender of that server', async () => {
    const destination = destinations.find((d) => senderInstanceFor(d.serverName, SENDERS) === 'fs2')!;
    const sender = cluster.instance('fs2').homeserver.federationSender!;
    const room = destination.pdus().find((p) => p.type === 'm.room.message')!.room_id as string;
    await destination.down();
    const registered = await cluster.instance('client1').call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'alice-password' },
    });
    assert.equal(registered.status, 200, registered.text);
    const token: string = registered.json.access_token;
    const sent = await cluster
      .instance('client1')
      .call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/down1`, {
        token,
        body: { msgtype: 'm.text', body: 'while down' },
      });
    assert.equal(sent.status, 200, sent.text);
    await eventually(() => (sender.status(destination.serverName)?.consecutiveFailures ?? 0) >= 1, 'a failed attempt');
    await destination.up();
    // The destination contacts main (which sends nothing): main's request authentication sees it
    // in backoff and says so on the bus.
    const main = cluster.instance('main').homeserver.services.federation;
    const uri = '/_matrix/federation/v1/version';
    await main.requestAuth.authenticate({ method: 'GET', uri, authorization: destination.authorization('cluster.test', 'GET', uri) });
    await eventually(() => destination.messageBodies(room).includes('while down'), 'the message, long before the hour');
  });
});
