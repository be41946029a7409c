// Benchmark group `federation`: the federation sender catching a destination up.
//
// A Myelin (in this process, SQLite, a TLS listener) and a destination server of the test's own
// (test/helpers/destination-server.ts: its own key, X-Matrix checked on every request) share a
// room. The destination goes down; 10,000 messages are sent in the room; it comes back and, as a
// returning server does, contacts Myelin (a signed request, authenticated by Myelin's request
// authentication, which sends REMOTE_SERVER_UP). Measured: from its return to the last of the
// 10,000 events received, all in order (target: within 30 s), and the catch-up's events per second.
// Both ends run on this machine and in one process, so the figure includes the destination's own
// work (TLS, signature checks).

import { startFederatingServer } from '../test/helpers/federation.js';
import { TestDestination } from '../test/helpers/destination-server.js';
import { createRoomWith, sendText } from '../test/helpers/rooms.js';
import { figure, type Figure } from './harness.js';

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
