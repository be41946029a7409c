// Two (and three) Myelins with real TLS listeners on loopback, named `localhost:<port>`, fetch each
// other's signing keys directly and through a notary, and authenticate each other's signed
// requests; the IP blacklist keeps one that may not reach loopback from reaching them.

import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseKeyQueryRequest, validateNotaryResponse, validateServerKeysResponse } from '../../src/core/server-keys.js';
import { encodePublicKey, generateSigningKey } from '../../src/core/signing.js';
import { signRequest } from '../../src/core/x-matrix.js';
import { FederationUnreachableError } from '../../src/federation/errors.js';
import { FederationRequestAuthenticator } from '../../src/federation/request-auth.js';
import { MatrixError } from '../../src/errors.js';
import { httpsCall, standaloneFederation, startFederatingServer, type FederatingServer } from '../helpers/federation.js';
import { makeCertificate } from '../helpers/tls-certs.js';

const oldKey = generateSigningKey('old1');
const OLD_EXPIRED_TS = 1_600_000_000_000;

describe('federation transport between Myelins over TLS', () => {
  let a: FederatingServer;
  let b: FederatingServer;

  before(async () => {
    a = await startFederatingServer();
    b = await startFederatingServer({
      config: {
        key_refresh_interval: '2h',
        old_signing_keys: { 'ed25519:old1': { key: encodePublicKey(oldKey), expired_ts: OLD_EXPIRED_TS } },
      },
    });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  test('GET /_matrix/key/v2/server: our keys, self-signed, valid for key_refresh_interval, with old_signing_keys', async () => {
    const before = Date.now();
    const answer = await httpsCall(b.baseUrl, 'GET', '/_matrix/key/v2/server');
    const after = Date.now();
    assert.equal(answer.status, 200);
    const checked = validateServerKeysResponse(answer.json, b.serverName);
    assert.ok(checked.ok, JSON.stringify(checked));
    const keyId = b.federation.ownKeys.signingKeys[0]!.keyId;
    assert.deepEqual([...checked.keys.verifyKeys.keys()], [keyId]);
    assert.deepEqual(answer.json.old_verify_keys, { 'ed25519:old1': { key: encodePublicKey(oldKey), expired_ts: OLD_EXPIRED_TS } });
    const twoHours = 2 * 3_600_000;
    assert.ok(
      answer.json.valid_until_ts >= before + twoHours && answer.json.valid_until_ts <= after + twoHours,
      String(answer.json.valid_until_ts),
    );

    // The form with a key id (dropped in spec v1.6, still answered as by Synapse) gives the same.
    const withKeyId = await httpsCall(b.baseUrl, 'GET', `/_matrix/key/v2/server/${encodeURIComponent(keyId)}`);
    assert.equal(withKeyId.status, 200);
    assert.deepEqual(withKeyId.json, answer.json);
  });

  test('A fetches B’s keys directly over TLS and keeps them in its database', async () => {
    const keyId = b.federation.ownKeys.signingKeys[0]!.keyId;
    const now = Date.now();
    const found = await a.federation.keyring.getVerifyKeys([
      { serverName: b.serverName, keyId, minimumValidUntilTs: now },
      { serverName: b.serverName, keyId: 'ed25519:old1', minimumValidUntilTs: 0 },
    ]);
    const current = found.get(b.serverName)?.get(keyId);
    assert.equal(current?.publicKey, encodePublicKey(b.federation.ownKeys.signingKeys[0]!));
    assert.equal(current?.old, false);
    const old = found.get(b.serverName)?.get('ed25519:old1');
    assert.deepEqual(old && { old: old.old, validUntilTs: old.validUntilTs }, { old: true, validUntilTs: OLD_EXPIRED_TS });

    const rows = await a.hs.homeserver.database.all<{ key_id: string; from_server: string; expired_ts: number | null }>(
      'SELECT key_id, from_server, expired_ts FROM server_verify_keys WHERE server_name = ? ORDER BY key_id',
      [b.serverName],
    );
    assert.deepEqual(
      rows.map((r) => ({ ...r, expired_ts: r.expired_ts === null ? null : Number(r.expired_ts) })),
      [
        { key_id: keyId, from_server: b.serverName, expired_ts: null },
        { key_id: 'ed25519:old1', from_server: b.serverName, expired_ts: OLD_EXPIRED_TS },
      ].sort((x, y) => (x.key_id < y.key_id ? -1 : 1)),
    );
    // An old key never signs requests: asked for as valid now, it is not given.
    assert.equal(await a.federation.keyring.getVerifyKey(b.serverName, 'ed25519:old1', now), undefined);
  });

  test('the notary endpoints: B serves A’s keys, signed by A and by B (GET, the old GET with a key id, POST)', async () => {
    const aKeyId = a.federation.ownKeys.signingKeys[0]!.keyId;
    const notaryKeys = { [b.federation.ownKeys.signingKeys[0]!.keyId]: encodePublicKey(b.federation.ownKeys.signingKeys[0]!) };
    const check = (json: unknown) => {
      const checked = validateNotaryResponse(json, { notaryServerName: b.serverName, notaryVerifyKeys: notaryKeys });
      assert.ok(checked, JSON.stringify(json));
      assert.deepEqual(checked.rejected, []);
      assert.deepEqual(
        checked.accepted.map((k) => k.serverName),
        [a.serverName],
      );
      assert.ok(checked.accepted[0]!.verifyKeys.has(aKeyId));
    };
    const get = await httpsCall(b.baseUrl, 'GET', `/_matrix/key/v2/query/${encodeURIComponent(a.serverName)}`);
    assert.equal(get.status, 200);
    check(get.json);
    const getOne = await httpsCall(
      b.baseUrl,
      'GET',
      `/_matrix/key/v2/query/${encodeURIComponent(a.serverName)}/${encodeURIComponent(aKeyId)}?minimum_valid_until_ts=${Date.now()}`,
    );
    assert.equal(getOne.status, 200);
    check(getOne.json);
    const post = await httpsCall(b.baseUrl, 'POST', '/_matrix/key/v2/query', {
      body: { server_keys: { [a.serverName]: { [aKeyId]: { minimum_valid_until_ts: Date.now() } } } },
    });
    assert.equal(post.status, 200);
    check(post.json);

    // The notary's own keys, and a server that cannot be reached (left out, not an error).
    const own = await httpsCall(b.baseUrl, 'POST', '/_matrix/key/v2/query', {
      body: { server_keys: { [b.serverName]: {}, 'localhost:1': {} } },
    });
    assert.equal(own.status, 200);
    assert.deepEqual(
      own.json.server_keys.map((k: { server_name: string }) => k.server_name),
      [b.serverName],
    );

    // Malformed queries are 400s.
    assert.equal((await httpsCall(b.baseUrl, 'POST', '/_matrix/key/v2/query', { body: { server_keys: [] } })).json.errcode, 'M_BAD_JSON');
    assert.equal((await httpsCall(b.baseUrl, 'GET', '/_matrix/key/v2/query/not%20a%20server')).json.errcode, 'M_INVALID_PARAM');
    assert.equal(
      (await httpsCall(b.baseUrl, 'GET', `/_matrix/key/v2/query/${a.serverName}?minimum_valid_until_ts=soon`)).json.errcode,
      'M_INVALID_PARAM',
    );
    assert.ok(parseKeyQueryRequest({ server_keys: {} }, 0).ok);
  });

  test('through a notary: C trusts B as its key server and gets A’s keys from B, without asking A', async () => {
    const bKey = b.federation.ownKeys.signingKeys[0]!;
    const c = await startFederatingServer({
      config: {
        trusted_key_servers: [{ server_name: b.serverName, verify_keys: { [bKey.keyId]: encodePublicKey(bKey) } }],
        // C may talk to B only: A's keys can come only through the notary.
        federation_domain_whitelist: [b.serverName],
      },
    });
    try {
      const aKeyId = a.federation.ownKeys.signingKeys[0]!.keyId;
      const key = await c.federation.keyring.getVerifyKey(a.serverName, aKeyId, Date.now());
      assert.equal(key?.publicKey, encodePublicKey(a.federation.ownKeys.signingKeys[0]!));
      const row = await c.hs.homeserver.database.get<{ from_server: string }>(
        'SELECT from_server FROM server_verify_keys WHERE server_name = ? AND key_id = ?',
        [a.serverName, aKeyId],
      );
      assert.equal(row?.from_server, b.serverName);
      // The raw answer is kept with A's signature only, ready to be served again.
      const stored = await c.hs.homeserver.database.get<{ key_json: string }>(
        'SELECT key_json FROM server_keys_json WHERE server_name = ?',
        [a.serverName],
      );
      assert.deepEqual(Object.keys(JSON.parse(stored!.key_json).signatures), [a.serverName]);
    } finally {
      await c.stop();
    }
  });

  test('a notary whose signature does not match its configured key is not believed', async () => {
    const c = await startFederatingServer({
      config: {
        trusted_key_servers: [
          { server_name: b.serverName, verify_keys: { 'ed25519:other': encodePublicKey(generateSigningKey('other')) } },
        ],
        federation_domain_whitelist: [b.serverName],
      },
    });
    try {
      const aKeyId = a.federation.ownKeys.signingKeys[0]!.keyId;
      assert.equal(await c.federation.keyring.getVerifyKey(a.serverName, aKeyId, Date.now()), undefined);
    } finally {
      await c.stop();
    }
  });

  describe('signed requests', () => {
    // A server of the test's own, named `localhost:<port>`, that authenticates what it receives
    // with B's keyring (which fetches the origin's keys over TLS).
    let receiver: Server;
    let receiverName: string;
    let authenticator: FederationRequestAuthenticator;

    before(async () => {
      const cert = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
      receiver = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          authenticator
            .authenticate({
              method: req.method!,
              uri: req.url!,
              authorization: req.headers.authorization,
              ...(text ? { content: JSON.parse(text) } : {}),
            })
            .then(
              ({ origin }) => {
                res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ origin, host: req.headers.host }));
              },
              (err: MatrixError) => {
                res.writeHead(err.status, { 'Content-Type': 'application/json' }).end(JSON.stringify(err.toJSON()));
              },
            );
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      receiverName = `localhost:${(receiver.address() as AddressInfo).port}`;
      authenticator = new FederationRequestAuthenticator({
        serverName: receiverName,
        keyring: b.federation.keyring,
        settings: { domainWhitelist: undefined },
      });
    });
    after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

    test('a request signed by A (body, query with escapes) is authenticated as A; Host is the server name', async () => {
      const answer = await a.federation.client.request(receiverName, {
        method: 'PUT',
        path: '/_matrix/federation/v1/send/txn%201',
        query: { a: 'x y&z', list: ['1', '2'] },
        body: { pdus: [], origin: a.serverName },
      });
      assert.deepEqual(answer, { origin: a.serverName, host: receiverName });
      const get = await a.federation.client.request(receiverName, { method: 'GET', path: '/_matrix/federation/v1/version' });
      assert.deepEqual(get, { origin: a.serverName, host: receiverName });
    });

    test('missing, malformed, misaddressed and forged signatures are 401 M_UNAUTHORIZED; a server outside the whitelist 403', async () => {
      const aKey = a.hs.homeserver.services.signingKey;
      const uri = '/_matrix/federation/v1/version';
      const signed = (overrides: { destination?: string; uri?: string; origin?: string } = {}) =>
        signRequest(
          {
            method: 'GET',
            uri: overrides.uri ?? uri,
            origin: overrides.origin ?? a.serverName,
            destination: overrides.destination ?? receiverName,
          },
          aKey,
        );
      const call = (authorization?: string) =>
        httpsCall(
          `https://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
          'GET',
          uri,
          authorization ? { headers: { Authorization: authorization } } : {},
        );

      const ok = await call(signed());
      assert.equal(ok.status, 200);
      for (const [what, header] of [
        ['no header', undefined],
        ['another scheme', 'Bearer abc'],
        ['for another server', signed({ destination: 'elsewhere.example' })],
        ['over another target', signed({ uri: '/_matrix/federation/v1/version?x=1' })],
        [
          'by a key A does not have',
          signRequest({ method: 'GET', uri, origin: a.serverName, destination: receiverName }, generateSigningKey('nope')),
        ],
        ['claiming another origin', signed({ origin: b.serverName })],
      ] as const) {
        const answer = await call(header);
        assert.equal(answer.status, 401, what);
        assert.equal(answer.json.errcode, 'M_UNAUTHORIZED', what);
      }

      const strict = new FederationRequestAuthenticator({
        serverName: receiverName,
        keyring: b.federation.keyring,
        settings: { domainWhitelist: new Set([b.serverName]) },
      });
      await assert.rejects(
        strict.authenticate({ method: 'GET', uri, authorization: signed() }),
        (err: MatrixError) => err.status === 403 && err.errcode === 'M_FORBIDDEN',
      );
    });
  });

  test('a server that may not reach loopback (the default ip_range_blacklist) cannot reach B, and gets no keys', async () => {
    const outsider = await standaloneFederation({ federation_verify_certificates: false, trusted_key_servers: [] });
    try {
      await assert.rejects(
        outsider.federation.client.request(b.serverName, { method: 'GET', path: '/_matrix/key/v2/server' }),
        (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'blocked',
      );
      assert.equal(await outsider.federation.keyring.getVerifyKey(b.serverName, b.federation.ownKeys.signingKeys[0]!.keyId, 0), undefined);
      // Allowing one address is enough (a bare address is a /32).
      const allowed = await standaloneFederation({
        federation_verify_certificates: false,
        trusted_key_servers: [],
        ip_range_whitelist: ['127.0.0.1'],
      });
      try {
        const answer = await allowed.federation.client.request(b.serverName, { method: 'GET', path: '/_matrix/key/v2/server' });
        assert.ok(validateServerKeysResponse(answer, b.serverName).ok);
      } finally {
        await allowed.close();
      }
    } finally {
      await outsider.close();
    }
  });

  test('with federation_verify_certificates on, B’s self-signed certificate is refused; a whitelisted name is not checked', async () => {
    const checking = await standaloneFederation({ ip_range_whitelist: ['127.0.0.0/8'], trusted_key_servers: [] });
    const whitelisting = await standaloneFederation({
      ip_range_whitelist: ['127.0.0.0/8'],
      trusted_key_servers: [],
      federation_certificate_verification_whitelist: ['local*'],
    });
    try {
      await assert.rejects(
        checking.federation.client.request(b.serverName, { method: 'GET', path: '/_matrix/key/v2/server' }),
        (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'tls',
      );
      const answer = await whitelisting.federation.client.request(b.serverName, { method: 'GET', path: '/_matrix/key/v2/server' });
      assert.ok(validateServerKeysResponse(answer, b.serverName).ok);
    } finally {
      await checking.close();
      await whitelisting.close();
    }
  });
});
