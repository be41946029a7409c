import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBase64 } from '../../src/core/base64.js';
import type { JsonObject } from '../../src/core/json.js';
import type { ServerVerifyKey } from '../../src/core/server-keys.js';
import { encodePublicKey, generateSigningKey, signJson, signingKeyFromSeed } from '../../src/core/signing.js';
import {
  formatXMatrixAuthorization,
  parseXMatrixAuthorization,
  readXMatrixHeader,
  requestSigningObject,
  signRequest,
  verifyRequestSignature,
  verifyXMatrixRequest,
  type XMatrixCredentials,
} from '../../src/core/x-matrix.js';

const key = signingKeyFromSeed('1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
const NOW = Date.UTC(2026, 0, 1);
const verifyKey: ServerVerifyKey = {
  serverName: 'origin.hs.example.com',
  keyId: 'ed25519:1',
  publicKey: encodePublicKey(key),
  validUntilTs: NOW + 1000,
  old: false,
};

const parse = (header: string) => {
  const result = parseXMatrixAuthorization(header);
  return result.ok ? result.credentials : result.error.code;
};
const creds = (origin: string, keyId: string, signature: string, destination?: string): XMatrixCredentials => ({
  origin,
  destination,
  keyId,
  signature,
});

test("the spec's example header", () => {
  assert.deepEqual(
    parse('X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."'),
    creds('origin.hs.example.com', 'ed25519:key1', 'ABCDEF...', 'destination.hs.example.com'),
  );
});

test("Synapse's parser cases: bare values, upper-case names, escapes, extra and unknown params, spaces and tabs around commas", () => {
  assert.deepEqual(parse('X-Matrix origin=foo,key="ed25519:1",sig="sig",destination="bar"'), creds('foo', 'ed25519:1', 'sig', 'bar'));
  assert.deepEqual(parse('X-Matrix  ORIGIN=foo,KEY="ed25\\519:1",SIG="sig",destination="bar"'), creds('foo', 'ed25519:1', 'sig', 'bar'));
  assert.deepEqual(
    parse('X-Matrix origin=foo,key="ed25519:1",sig="sig",destination="bar",extra_field=ignored'),
    creds('foo', 'ed25519:1', 'sig', 'bar'),
  );
  assert.deepEqual(
    parse('X-Matrix origin=foo , key="ed25519:1",  sig="sig",\tdestination="bar",\t\textra_field=ignored'),
    creds('foo', 'ed25519:1', 'sig', 'bar'),
  );
});

test('RFC 9110 details: scheme case, any order, colons and base64 in bare values, empty list elements, BWS around =', () => {
  assert.deepEqual(
    parse('x-matrix sig=abc/def+g==,key=ed25519:a_b,origin=example.org:8448'),
    creds('example.org:8448', 'ed25519:a_b', 'abc/def+g=='),
  );
  assert.deepEqual(parse('X-MATRIX ,origin="a.b", ,key="ed25519:1",,sig="s",'), creds('a.b', 'ed25519:1', 's'));
  assert.deepEqual(parse('X-Matrix origin = "a.b",key= "ed25519:1",sig ="s"'), creds('a.b', 'ed25519:1', 's'));
  assert.deepEqual(parse('X-Matrix origin="[::1]:8448",key="ed25519:1",sig="s"'), creds('[::1]:8448', 'ed25519:1', 's'));
  // A quoted value may hold commas, spaces and escaped quotes; unknown params may hold anything.
  assert.deepEqual(parse('X-Matrix note="a, \\"b\\" c",origin="a.b",key="ed25519:1",sig="s"'), creds('a.b', 'ed25519:1', 's'));
  assert.equal(
    (parseXMatrixAuthorization('X-Matrix origin="a.b",key="ed25519:1",sig="s"') as { credentials: XMatrixCredentials }).credentials
      .destination,
    undefined,
  );
});

test('malformed and incomplete headers are typed errors, never exceptions', () => {
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'missing'],
    ['', 'missing'],
    ['Bearer abc', 'missing'],
    ['X-Matrixorigin="a.b"', 'missing'],
    ['X-Matrix', 'missing-param'],
    ['X-Matrix ', 'missing-param'],
    ['X-Matrix origin="a.b",key="ed25519:1"', 'missing-param'],
    ['X-Matrix origin="a.b",key="ed25519:1",sig=""', 'missing-param'],
    ['X-Matrix origin="a.b",key="ed25519:1",sig="s",origin="c.d"', 'duplicate-param'],
    ['X-Matrix origin="a.b",ORIGIN="a.b",key="ed25519:1",sig="s"', 'duplicate-param'],
    ['X-Matrix origin="a.b,key="ed25519:1",sig="s"', 'malformed'],
    ['X-Matrix origin="a.b" key="ed25519:1",sig="s"', 'malformed'],
    ['X-Matrix origin,key="ed25519:1",sig="s"', 'malformed'],
    ['X-Matrix origin=,key="ed25519:1",sig="s"', 'malformed'],
    ['X-Matrix =x,origin="a.b"', 'malformed'],
    ['X-Matrix origin="a.b\\', 'malformed'],
    ['X-Matrix origin="a\u0001b",key="ed25519:1",sig="s"', 'malformed'],
    ['X-Matrix origin="not a server",key="ed25519:1",sig="s"', 'invalid-origin'],
    ['X-Matrix origin="a.b",key="nokeyid",sig="s"', 'invalid-key-id'],
    ['X-Matrix origin="a.b",key="ed25519:",sig="s"', 'invalid-key-id'],
  ];
  for (const [header, code] of cases) {
    assert.equal(parse(header as string), code, String(header));
  }
  // Hostile input: long, odd, nested-looking; none throws.
  for (const header of [
    'X-Matrix ' + 'a=b,'.repeat(10000),
    'X-Matrix ' + '"'.repeat(1000),
    'X-Matrix a="' + '\\'.repeat(999),
    'X-Matrix \u00ff=\u00ff',
  ]) {
    assert.doesNotThrow(() => parseXMatrixAuthorization(header));
  }
});

test('formatting follows the sender rules and round-trips', () => {
  const c = creds('origin.example', 'ed25519:k', 'c2ln/+==', 'dest.example:8448');
  const header = formatXMatrixAuthorization(c);
  assert.equal(header, 'X-Matrix origin="origin.example",destination="dest.example:8448",key="ed25519:k",sig="c2ln/+=="');
  assert.deepEqual(parse(header), c);
  const odd = creds('a.b', 'ed25519:k', 'with "quote" and \\ backslash');
  assert.deepEqual(parse(formatXMatrixAuthorization(odd)), odd);
});

test('the signed object has content only when there is a body', () => {
  assert.deepEqual(requestSigningObject({ method: 'GET', uri: '/_matrix/federation/v1/version', origin: 'a', destination: 'b' }), {
    method: 'GET',
    uri: '/_matrix/federation/v1/version',
    origin: 'a',
    destination: 'b',
  });
  assert.deepEqual(requestSigningObject({ method: 'PUT', uri: '/x?a=1&b=%20', origin: 'a', destination: 'b', content: {} }).content, {});
});

test('signing a request gives the header the spec describes, with the signature of the JSON of step 1', () => {
  const request = {
    method: 'POST',
    uri: '/target',
    origin: 'origin.hs.example.com',
    destination: 'destination.hs.example.com',
    content: { a: 1 },
  };
  const header = signRequest(request, key);
  const expected: JsonObject = signJson<JsonObject>(
    { method: 'POST', uri: '/target', origin: 'origin.hs.example.com', destination: 'destination.hs.example.com', content: { a: 1 } },
    'origin.hs.example.com',
    key,
  );
  const sig = (expected.signatures as Record<string, Record<string, string>>)['origin.hs.example.com']!['ed25519:1']!;
  assert.equal(header, `X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:1",sig="${sig}"`);
  assert.ok(verifyRequestSignature(request, 'ed25519:1', sig, encodePublicKey(key)));
  // Any change to what is signed breaks it.
  assert.ok(!verifyRequestSignature({ ...request, uri: '/target?x=1' }, 'ed25519:1', sig, encodePublicKey(key)));
  assert.ok(!verifyRequestSignature({ ...request, method: 'PUT' }, 'ed25519:1', sig, encodePublicKey(key)));
  assert.ok(!verifyRequestSignature({ ...request, content: { a: 2 } }, 'ed25519:1', sig, encodePublicKey(key)));
  assert.ok(!verifyRequestSignature({ ...request, content: undefined }, 'ed25519:1', sig, encodePublicKey(key)));
  assert.ok(!verifyRequestSignature({ ...request, destination: 'other.example' }, 'ed25519:1', sig, encodePublicKey(key)));
  assert.ok(!verifyRequestSignature(request, 'ed25519:1', 'garbage', encodePublicKey(key)));
  assert.ok(!verifyRequestSignature(request, 'ed25519:1', sig, 'not a key'));
});

test('authenticating an inbound request end to end', () => {
  const us = 'destination.hs.example.com';
  const request = { method: 'PUT', uri: '/_matrix/federation/v1/send/txn1', content: { pdus: [] } };
  const header = signRequest({ ...request, origin: 'origin.hs.example.com', destination: us }, key);

  const read = readXMatrixHeader(header, us);
  assert.ok(read.ok);
  assert.deepEqual(verifyXMatrixRequest(read.credentials, request, us, verifyKey, NOW), { ok: true, origin: 'origin.hs.example.com' });

  const failure = (result: { ok: boolean; failure?: { reason: string; status: number; errcode: string } }) => {
    assert.equal(result.ok, false);
    assert.equal(result.failure!.status, 401);
    assert.equal(result.failure!.errcode, 'M_UNAUTHORIZED');
    return result.failure!.reason;
  };
  assert.equal(failure(readXMatrixHeader(undefined, us)), 'missing');
  assert.equal(failure(readXMatrixHeader('X-Matrix nonsense', us)), 'malformed');
  assert.equal(failure(readXMatrixHeader(header, 'someone.else')), 'wrong-destination');
  assert.equal(failure(verifyXMatrixRequest(read.credentials, request, us, undefined, NOW)), 'unknown-key');
  assert.equal(failure(verifyXMatrixRequest(read.credentials, request, us, { ...verifyKey, keyId: 'ed25519:2' }, NOW)), 'unknown-key');
  assert.equal(
    failure(verifyXMatrixRequest(read.credentials, request, us, { ...verifyKey, serverName: 'evil.example' }, NOW)),
    'unknown-key',
  );
  assert.equal(failure(verifyXMatrixRequest(read.credentials, request, us, verifyKey, NOW + 1001)), 'key-not-valid-now');
  assert.equal(failure(verifyXMatrixRequest(read.credentials, request, us, { ...verifyKey, old: true }, NOW)), 'key-not-valid-now');
  assert.equal(
    failure(verifyXMatrixRequest(read.credentials, { ...request, uri: '/_matrix/federation/v1/send/txn2' }, us, verifyKey, NOW)),
    'bad-signature',
  );
  const otherKey = { ...verifyKey, publicKey: encodePublicKey(generateSigningKey('1')) };
  assert.equal(failure(verifyXMatrixRequest(read.credentials, request, us, otherKey, NOW)), 'bad-signature');

  // A request without `destination` in the header (older servers) still verifies against our
  // name; one signed for another server does not, whatever its header claims.
  const { destination: _d, ...withoutDestination } = read.credentials;
  const legacy = readXMatrixHeader(formatXMatrixAuthorization({ ...withoutDestination, destination: undefined }), us);
  assert.ok(legacy.ok);
  assert.ok(verifyXMatrixRequest(legacy.credentials, request, us, verifyKey, NOW).ok);
  const forOther = signRequest({ ...request, origin: 'origin.hs.example.com', destination: 'other.example' }, key);
  const relabelled = readXMatrixHeader(forOther.replace('destination="other.example"', `destination="${us}"`), us);
  assert.ok(relabelled.ok);
  assert.equal(failure(verifyXMatrixRequest(relabelled.credentials, request, us, verifyKey, NOW)), 'bad-signature');
});
