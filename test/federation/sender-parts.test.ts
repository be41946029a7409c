// Parts of the federation sender on their own: the retry pauses, the EDUs as built (each read back
// by core/edus.ts `parseEdu`, as a receiving server reads it), and the catch-up reader on a real
// database — what it sends after a gap, and the latest event per room beyond a large one.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { parseEdu, type Edu } from '../../src/core/edus.js';
import {
  deviceListUpdateEdu,
  directToDeviceEdu,
  presenceEdu,
  receiptEdus,
  refusedPdus,
  signingKeyUpdateEdu,
  transactionBody,
  typingEdu,
  withExtraSignatures,
  type OutboundEdu,
} from '../../src/core/outbound-edus.js';
import { DEFAULT_RETRY_POLICY, formatDelay, nextRetryInterval, startingPosition } from '../../src/federation/sender/index.js';
import { DestinationCatchUp } from '../../src/federation/sender/catch-up.js';
import { FederationSenderReads } from '../../src/storage/federation-sender-reads.js';
import { testPostgres } from '../harness/postgres.js';
import { startTestHomeserver, type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { createRoomWith, sendText } from '../helpers/rooms.js';

describe('retry pauses', () => {
  test('5 s first, doubling with jitter, never shorter than before, up to a week', () => {
    assert.equal(nextRetryInterval(0, DEFAULT_RETRY_POLICY), 5_000);
    let interval = 0;
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      const next = nextRetryInterval(interval, DEFAULT_RETRY_POLICY);
      assert.ok(next >= interval);
      if (interval > 0 && interval < DEFAULT_RETRY_POLICY.maxIntervalMs / 4)
        assert.ok(next >= interval * 1.6 && next <= interval * 2.4, `${interval} → ${next}`);
      interval = next;
      seen.push(next);
    }
    assert.equal(interval, 7 * 24 * 3_600_000);
    assert.ok(seen.indexOf(interval) <= 20, 'the ceiling is reached after about seventeen failures');
    // A multiplier below 1/0.8 cannot shrink the pause.
    assert.ok(nextRetryInterval(10_000, { minIntervalMs: 1_000, multiplier: 1, maxIntervalMs: 60_000 }, () => 0) >= 10_000);
  });

  test('log wording', () => {
    assert.deepEqual(
      [formatDelay(800), formatDelay(5_000), formatDelay(90_000), formatDelay(3.5 * 3_600_000), formatDelay(7 * 86_400_000)],
      ['800 ms', '5 s', '1.5 min', '3.5 h', '7 d'],
    );
  });
});

describe('where a sender instance starts reading', () => {
  test("where the furthest instance stopped (its own, another's, a former one's); the current position the first time", () => {
    assert.equal(startingPosition(new Map(), 42), 42);
    assert.equal(startingPosition(new Map([['fs1', 10]]), 42), 10);
    assert.equal(
      startingPosition(
        new Map([
          ['fs1', 10],
          ['main', 30],
        ]),
        42,
      ),
      30,
    );
  });
});

describe('outbound EDUs read back as a receiving server reads them', () => {
  const origin = 'sender.example';
  const receiver = 'receiver.example';
  const read = (edu: OutboundEdu): Edu => {
    const result = parseEdu(JSON.parse(JSON.stringify(edu)), { origin, localServerName: receiver });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.skipped, []);
    return result.edu;
  };

  test('m.typing, m.presence', () => {
    assert.deepEqual(read(typingEdu('!r:sender.example', '@a:sender.example', true)), {
      type: 'm.typing',
      roomId: '!r:sender.example',
      userId: '@a:sender.example',
      typing: true,
    });
    const presence = read(
      presenceEdu([
        { userId: '@a:sender.example', presence: 'online', lastActiveAgo: 10, currentlyActive: true, statusMsg: 'hi' },
        { userId: '@b:sender.example', presence: 'offline', lastActiveAgo: undefined, currentlyActive: undefined, statusMsg: undefined },
      ]),
    );
    assert.equal(presence.type, 'm.presence');
    assert.deepEqual(
      presence.type === 'm.presence' &&
        presence.updates.map((u) => [u.userId, u.presence, u.lastActiveAgo, u.currentlyActive, u.statusMsg]),
      [
        ['@a:sender.example', 'online', 10, true, 'hi'],
        ['@b:sender.example', 'offline', undefined, undefined, undefined],
      ],
    );
  });

  test("m.receipt: a user's receipts in two threads of one room need two EDUs", () => {
    const id = (c: string) => `$${c.repeat(43)}`;
    const edus = receiptEdus([
      { roomId: '!r:sender.example', userId: '@a:sender.example', eventId: id('a'), ts: 1, threadId: undefined },
      { roomId: '!r:sender.example', userId: '@a:sender.example', eventId: id('b'), ts: 2, threadId: id('r') },
      { roomId: '!r:sender.example', userId: '@b:sender.example', eventId: id('a'), ts: 3, threadId: 'main' },
      { roomId: '!s:sender.example', userId: '@a:sender.example', eventId: id('c'), ts: 4, threadId: undefined },
    ]);
    assert.equal(edus.length, 2);
    const receipts = edus.map(read).flatMap((e) => (e.type === 'm.receipt' ? e.receipts : []));
    assert.deepEqual(
      receipts.map((r) => [r.roomId, r.userId, r.eventIds[0], r.ts, r.threadId]).sort(),
      [
        ['!r:sender.example', '@a:sender.example', id('a'), 1, undefined],
        ['!r:sender.example', '@a:sender.example', id('b'), 2, id('r')],
        ['!r:sender.example', '@b:sender.example', id('a'), 3, 'main'],
        ['!s:sender.example', '@a:sender.example', id('c'), 4, undefined],
      ].sort(),
    );
  });

  test('m.device_list_update, m.signing_key_update, m.direct_to_device', () => {
    const keys = withExtraSignatures(
      {
        user_id: '@a:sender.example',
        device_id: 'DEV',
        algorithms: [],
        keys: { 'ed25519:DEV': 'k' },
        signatures: { '@a:sender.example': { 'ed25519:DEV': 's1' } },
      },
      [{ signer: '@a:sender.example', keyId: 'ed25519:ssk', signature: 's2' }],
    );
    assert.deepEqual(keys.signatures, { '@a:sender.example': { 'ed25519:DEV': 's1', 'ed25519:ssk': 's2' } });
    const update = read(
      deviceListUpdateEdu({ userId: '@a:sender.example', deviceId: 'DEV', streamId: 7, prevId: 5, keys, deleted: false }),
    );
    assert.ok(update.type === 'm.device_list_update');
    assert.deepEqual([update.streamId, update.prevIds, update.deleted, update.keys], [7, [5], false, keys]);
    const gone = read(
      deviceListUpdateEdu({ userId: '@a:sender.example', deviceId: 'OLD', streamId: 8, prevId: undefined, keys: undefined, deleted: true }),
    );
    assert.ok(gone.type === 'm.device_list_update' && gone.deleted && gone.prevIds.length === 0);
    const master = { user_id: '@a:sender.example', usage: ['master'], keys: { 'ed25519:m': 'm' } };
    const selfSigning = { user_id: '@a:sender.example', usage: ['self_signing'], keys: { 'ed25519:s': 's' } };
    const signing = read(signingKeyUpdateEdu('@a:sender.example', master, selfSigning));
    assert.ok(signing.type === 'm.signing_key_update');
    assert.deepEqual([signing.masterKey, signing.selfSigningKey], [master, selfSigning]);
    const toDevice = read(
      directToDeviceEdu('@a:sender.example', 'm.room_key_request', 'abcdefghijklmnop', { '@z:receiver.example': { '*': { x: 1 } } }),
    );
    assert.ok(toDevice.type === 'm.direct_to_device');
    assert.deepEqual(toDevice.messages.get('@z:receiver.example')?.get('*'), { x: 1 });
  });

  test('the transaction body and the refused PDUs of its answer', () => {
    assert.deepEqual(transactionBody('o.example', 5, [], []), { origin: 'o.example', origin_server_ts: 5, pdus: [] });
    assert.deepEqual(refusedPdus({ pdus: { $a: {}, $b: { error: 'bad' }, $c: { error: { deep: 1 } } } }), [
      { eventId: '$b', error: 'bad' },
      { eventId: '$c', error: '{"deep":1}' },
    ]);
    assert.deepEqual(refusedPdus('nonsense'), []);
  });
});

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`catch-up from the database (${backend})`, () => {
    let hs: TestHomeserver;
    let alice: TestUser;
    const destination = 'catchup.example';
    const log = pino({ level: 'silent' });

    before(async () => {
      // The sender itself is kept from this destination: the catch-up reader is driven by hand.
      const config = { federation_domain_whitelist: ['nowhere.example'] };
      if (backend === 'sqlite') hs = await startTestHomeserver({ config });
      else {
        const pg = await testPostgres();
        hs = await startTestHomeserver({
          config,
          database: { name: 'psycopg2', args: { host: pg.socketDir, user: pg.user, database: await pg.createDatabase('catch_up') } },
        });
      }
      alice = await hs.createUser('alice');
    });
    after(() => hs?.stop());

    async function joined(roomId: string, localpart: string, membership = 'join'): Promise<void> {
      const userId = `@${localpart}:${destination}`;
      await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
        type: 'm.room.member',
        stateKey: userId,
        sender: membership === 'join' ? userId : alice.userId,
        content: { membership },
      });
    }

    const reads = () => new FederationSenderReads(hs.homeserver.database, hs.serverName);
    const position = () => hs.homeserver.services.notifier.currentPositions().events;

    test('our events in the rooms the destination was in, in order, while it was in them', async () => {
      const shared = await createRoomWith(hs, alice);
      const notShared = await createRoomWith(hs, alice);
      const start = position();
      await sendText(hs, shared, alice, 'before its join');
      await joined(shared, 'r');
      await sendText(hs, shared, alice, 'one');
      await sendText(hs, notShared, alice, 'elsewhere');
      await sendText(hs, shared, alice, 'two');
      await joined(shared, 'r', 'ban');
      await sendText(hs, shared, alice, 'after the ban');
      const catchUp = new DestinationCatchUp(destination, hs.serverName, reads(), { pageSize: 2, largeGap: 10_000, log });
      const bodies: string[] = [];
      const types: string[] = [];
      let cursor = start;
      for (;;) {
        const page = await catchUp.next(cursor, position());
        assert.ok(page.events.length <= 2);
        for (const e of page.events) {
          types.push(e.pdu.type as string);
          if (e.pdu.type === 'm.room.message') bodies.push((e.pdu.content as { body: string }).body);
        }
        assert.ok(page.upTo > cursor || page.done);
        cursor = page.upTo;
        if (page.done) break;
      }
      assert.deepEqual(bodies, ['one', 'two']);
      // The ban is for the banned server too (it was in the room just before it).
      assert.deepEqual(types, ['m.room.message', 'm.room.message', 'm.room.member']);
    });

    test('beyond a large gap, the latest event of each shared room', async () => {
      const big = await createRoomWith(hs, alice);
      const small = await createRoomWith(hs, alice);
      await joined(big, 'big');
      await joined(small, 'small');
      const start = position();
      for (let i = 0; i < 25; i++) await sendText(hs, big, alice, `big${i}`);
      await sendText(hs, small, alice, 'small0');
      const catchUp = new DestinationCatchUp(destination, hs.serverName, reads(), { pageSize: 50, largeGap: 20, log });
      const page = await catchUp.next(start, position());
      assert.deepEqual(
        page.events.map((e) => (e.pdu.content as { body: string }).body),
        ['big24', 'small0'],
      );
      const last = await catchUp.next(page.upTo, position());
      assert.ok(last.done && last.events.length === 0 && last.upTo === position());
      // Under the threshold, everything is replayed.
      const all = await new DestinationCatchUp(destination, hs.serverName, reads(), { pageSize: 50, largeGap: 100, log }).next(
        start,
        position(),
      );
      assert.equal(all.events.length, 26);
    });
  });
}
