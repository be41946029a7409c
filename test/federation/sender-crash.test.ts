// The federation sender survives a crash: a real `bin/myelin start` process is killed with SIGKILL
// while clients send messages and its sender sends them on, then started again; the destination
// (a server of the test's own, X-Matrix checked) ends up with every message whose send was
// answered 200, in the room's order.
//
// Simulated: the room and the destination's membership are made by an in-process Myelin on the same
// directory before the real process starts (the inbound join API does not exist yet, so the remote
// join is written through Myelin's own events writer).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { computeEventId } from '../../src/core/hashes.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { TestDestination } from '../helpers/destination-server.js';
import { httpsCall, startFederatingServer } from '../helpers/federation.js';
import { spawnMyelin, type MyelinProcess } from '../helpers/myelin.js';
import { createRoomWith } from '../helpers/rooms.js';
import { eventually } from '../helpers/wait.js';

const FAST_RETRIES = { federation: { destination_min_retry_interval: '200ms', destination_max_retry_interval: '2s' } };

test('kill -9 while sending: after the restart the destination has every message acknowledged to a client, in order', async () => {
  const destination = await TestDestination.start();
  // Answers take a moment, so transactions are in flight when the process dies.
  destination.delayMs = 5;
  const setup = await startFederatingServer({ config: FAST_RETRIES });
  const { port, hs } = setup;
  const alice = await hs.createUser('alice');
  const roomId = await createRoomWith(hs, alice);
  const remote = `@remote:${destination.serverName}`;
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: remote,
    sender: remote,
    content: { membership: 'join' },
  });
  await setup.stop();

  const baseUrl = `https://127.0.0.1:${port}`;
  const configPath = join(hs.dir, 'homeserver.yaml');
  const start = async (): Promise<MyelinProcess> => {
    const proc = spawnMyelin(['start', '-c', configPath], { env: { MYELIN_LOG_LEVEL: process.env.MYELIN_TEST_LOG_LEVEL ?? 'warn' } });
    await eventually(
      async () => (await httpsCall(baseUrl, 'GET', '/_matrix/client/versions')).status === 200,
      'the server serving',
      60_000,
    );
    return proc;
  };
  let proc = await start();
  try {
    const acknowledged = new Set<string>();
    let sending = true;
    let counter = 0;
    const senders = Array.from({ length: 6 }, async () => {
      while (sending) {
        const i = counter++;
        try {
          const res = await httpsCall(
            baseUrl,
            'PUT',
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/crash${i}`,
            {
              headers: { Authorization: `Bearer ${alice.accessToken}` },
              body: { msgtype: 'm.text', body: `c${i}` },
            },
          );
          if (res.status === 200) acknowledged.add((res.json as { event_id: string }).event_id);
        } catch {
          // The process is gone: this send was never acknowledged.
        }
      }
    });
    // Kill it once the destination has started receiving, mid-stream.
    await eventually(() => destination.pdus().length >= 40, 'messages flowing to the destination');
    proc.child.kill('SIGKILL');
    await proc.stop();
    sending = false;
    await Promise.all(senders);
    assert.ok(acknowledged.size >= 40, `${acknowledged.size} sends acknowledged before the kill`);

    proc = await start();
    const version = getRoomVersion('12')!;
    const receivedIds = () =>
      destination
        .pdus()
        .filter((p) => p.type === 'm.room.message')
        .map((p) => computeEventId(p, version));
    await eventually(
      () => {
        const received = new Set(receivedIds());
        return [...acknowledged].every((id) => received.has(id));
      },
      'every acknowledged message at the destination',
      60_000,
    );

    // In the room's order: the depth of each event received (first time) only grows.
    const firstSeen: JsonObject[] = [];
    const seen = new Set<string>();
    for (const pdu of destination.pdus()) {
      if (pdu.type !== 'm.room.message') continue;
      const id = computeEventId(pdu, version);
      if (seen.has(id)) continue;
      seen.add(id);
      firstSeen.push(pdu);
    }
    for (let i = 1; i < firstSeen.length; i++)
      assert.ok(Number(firstSeen[i]!.depth) > Number(firstSeen[i - 1]!.depth), "received in the room's order");
    assert.deepEqual(destination.refusedSignatures, []);
  } finally {
    await proc.stop();
    await destination.stop();
  }
});
