// The keyring against an origin server the test plays (its own signing key, serving
// `/_matrix/key/v2/server` over TLS on loopback, counting requests): lookups coalesce, answers are
// cached in memory and in the database, bad answers are refused, a failing server is not hammered,
// validity is capped at 7 days, and the notary serves stored answers while fresh.

import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import type { JsonObject } from '../../src/core/json.js';
import { buildOwnServerKeys, MAX_KEY_VALIDITY_AFTER_FETCH_MS, validateNotaryResponse } from '../../src/core/server-keys.js';
import { encodePublicKey, generateSigningKey, signJson } from '../../src/core/signing.js';
import { Keyring } from '../../src/federation/keyring.js';
import { ServerKeysStore } from '../../src/storage/server-keys-store.js';
import { LOOPBACK_FEDERATION, standaloneFederation, type StandaloneFederation } from '../helpers/federation.js';
import { makeCertificate } from '../helpers/tls-certs.js';

const HOUR = 3_600_000;
const silent = pino({ level: 'silent' });

describe('the keyring', () => {
  const originKey = generateSigningKey('origin1');
  let origin: Server;
  let originName: string;
  let hits = 0;
  /** What the origin answers; by default its real keys, valid for a day. */
  let answer: () => { status: number; body: string } = () => ({ status: 200, body: JSON.stringify(realKeys(Date.now(), 24 * HOUR)) });
  /** While set, answers wait for it. */
  let gate: Promise<void> | undefined;
  let fed: StandaloneFederation;

  const realKeys = (now: number, lifetime: number): JsonObject =>
    buildOwnServerKeys({ serverName: originName, signingKeys: [originKey], now, keyRefreshIntervalMs: lifetime });

  before(async () => {
    const cert = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    origin = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      if (!req.url?.startsWith('/_matrix/key/v2/server')) return res.writeHead(404).end();
      hits++;
      void (gate ?? Promise.resolve()).then(() => {
        const { status, body } = answer();
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(body);
      });
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originName = `localhost:${(origin.address() as AddressInfo).port}`;
  });
  after(async () => {
    origin.closeAllConnections();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
  });
  beforeEach(async () => {
    await fed?.close();
    fed = await standaloneFederation(LOOPBACK_FEDERATION);
    hits = 0;
    gate = undefined;
    answer = () => ({ status: 200, body: JSON.stringify(realKeys(Date.now(), 24 * HOUR)) });
  });
  after(() => fed?.close());

  /** A keyring on `fed`'s database and client with a clock of the test's own. */
  const keyringAt = (clock: { now: number }) =>
    new Keyring({
      ownKeys: fed.federation.ownKeys,
      store: new ServerKeysStore(fed.db),
      client: fed.federation.client,
      settings: fed.federation.settings,
      log: silent,
      now: () => clock.now,
    });

  test('concurrent lookups of one server make one request; later ones come from memory, then from the database', async () => {
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const lookups = Array.from({ length: 20 }, () => fed.federation.keyring.getVerifyKey(originName, originKey.keyId, Date.now()));
    // The origin holds its answer until the first request has arrived and the others had time to
    // reach the keyring too.
    while (hits === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    const keys = await Promise.all(lookups);
    assert.ok(keys.every((k) => k?.publicKey === encodePublicKey(originKey)));
    assert.equal(hits, 1);

    assert.ok(await fed.federation.keyring.getVerifyKey(originName, originKey.keyId, Date.now()));
    assert.equal(hits, 1);
    // A keyring with an empty memory (as after a restart) finds it in the database.
    const restarted = keyringAt({ now: Date.now() });
    assert.ok(await restarted.getVerifyKey(originName, originKey.keyId, Date.now()));
    assert.equal(hits, 1);
  });

  test('a key known for less long than asked is fetched again; a key the server does not have is missing', async () => {
    const clock = { now: Date.now() };
    const keyring = keyringAt(clock);
    assert.ok(await keyring.getVerifyKey(originName, originKey.keyId, clock.now));
    assert.equal(hits, 1);
    // Asked to be valid beyond what was published: asked again (and still not enough).
    assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, clock.now + 48 * HOUR), undefined);
    assert.equal(hits, 2);
    // Another key id of the same server, soon after: the server was just asked and did not have
    // what was wanted, so it is not asked again at once.
    assert.equal(await keyring.getVerifyKey(originName, 'ed25519:unknown', 0), undefined);
    assert.equal(hits, 2);
  });

  test('a server that fails is not asked again until its backoff has passed (10 s, doubling)', async () => {
    answer = () => ({ status: 500, body: '{"errcode":"M_UNKNOWN","error":"down"}' });
    const clock = { now: Date.now() };
    const keyring = keyringAt(clock);
    assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, clock.now), undefined);
    assert.equal(hits, 1);
    clock.now += 5_000;
    assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, clock.now), undefined);
    assert.equal(hits, 1);
    clock.now += 6_000;
    assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, clock.now), undefined);
    assert.equal(hits, 2);
    clock.now += 11_000; // the second failure waits 20 s
    assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, clock.now), undefined);
    assert.equal(hits, 2);
    answer = () => ({ status: 200, body: JSON.stringify(realKeys(clock.now, 24 * HOUR)) });
    clock.now += 10_000;
    assert.ok(await keyring.getVerifyKey(originName, originKey.keyId, clock.now));
    assert.equal(hits, 3);
  });

  test('answers that are not the server’s own, correctly signed keys are refused and not stored', async () => {
    const other = generateSigningKey('other');
    const now = Date.now();
    const base = () => realKeys(now, 24 * HOUR);
    const unsigned = () => {
      const json = base();
      delete json.signatures;
      return json;
    };
    for (const [what, body] of [
      [
        'another server’s name',
        JSON.stringify(buildOwnServerKeys({ serverName: 'localhost:1', signingKeys: [originKey], now, keyRefreshIntervalMs: HOUR })),
      ],
      ['no signature', JSON.stringify(unsigned())],
      ['signed by a key it does not list', JSON.stringify(signJson(unsigned(), originName, other))],
      ['a tampered key', JSON.stringify({ ...base(), verify_keys: { [originKey.keyId]: { key: encodePublicKey(other) } } })],
      ['not JSON', '<html>'],
      ['too large', JSON.stringify({ ...base(), padding: 'x'.repeat(1024 * 1024) })],
    ] as const) {
      answer = () => ({ status: 200, body });
      const keyring = keyringAt({ now: Date.now() });
      assert.equal(await keyring.getVerifyKey(originName, originKey.keyId, 0), undefined, what);
    }
    assert.deepEqual(await new ServerKeysStore(fed.db).keysOf(originName), []);
    assert.equal(await new ServerKeysStore(fed.db).answerOf(originName), undefined);
  });

  test('a published validity of a year counts for 7 days after the fetch (keys.yaml)', async () => {
    const now = Date.now();
    answer = () => ({ status: 200, body: JSON.stringify(realKeys(now, 365 * 24 * HOUR)) });
    const clock = { now };
    const key = await keyringAt(clock).getVerifyKey(originName, originKey.keyId, now);
    assert.equal(key?.validUntilTs, now + MAX_KEY_VALIDITY_AFTER_FETCH_MS);
    assert.equal(await keyringAt(clock).getVerifyKey(originName, originKey.keyId, now + 8 * 24 * HOUR), undefined);
  });

  test('as a notary: a stored answer is served for half its life, then fetched again; the last one if the server is down', async () => {
    const clock = { now: Date.now() };
    const t0 = clock.now;
    answer = () => ({ status: 200, body: JSON.stringify(realKeys(t0, 4 * HOUR)) });
    const notary = keyringAt(clock);
    const query = () => notary.queryAsNotary(new Map([[originName, new Map([[originKey.keyId, clock.now]])]]));
    const check = (served: JsonObject[]) => {
      const checked = validateNotaryResponse(
        { server_keys: served },
        {
          notaryServerName: fed.federation.settings.serverName,
          notaryVerifyKeys: { [fed.signingKey.keyId]: encodePublicKey(fed.signingKey) },
        },
      );
      assert.equal(checked?.accepted.length, 1);
      return checked.accepted[0]!;
    };
    assert.equal(check(await query()).validUntilTs, t0 + 4 * HOUR);
    assert.equal(hits, 1);
    clock.now = t0 + HOUR;
    check(await query());
    assert.equal(hits, 1);
    // Past half its life: fetched again.
    clock.now = t0 + 2 * HOUR + 1;
    answer = () => ({ status: 200, body: JSON.stringify(realKeys(clock.now, 4 * HOUR)) });
    assert.equal(check(await query()).validUntilTs, clock.now + 4 * HOUR);
    assert.equal(hits, 2);
    // The server goes down; past half-life again: it is asked, and the last answer is served.
    const last = clock.now;
    answer = () => ({ status: 503, body: '{}' });
    clock.now = last + 3 * HOUR;
    assert.equal(check(await query()).validUntilTs, last + 4 * HOUR);
    assert.equal(hits, 3);
    // A key it never had: nothing.
    assert.deepEqual(await notary.queryAsNotary(new Map([[originName, new Map([['ed25519:nope', 0]])]])), []);
  });
});
