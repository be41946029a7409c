import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBase64, encodeBase64 } from '../../src/core/base64.js';
import type { JsonObject } from '../../src/core/json.js';
import {
  SigningKeyError,
  encodePublicKey,
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  publicKeyObject,
  signJson,
  signatureKeyIds,
  signingKeyFromSeed,
  verifyJsonSignature,
} from '../../src/core/signing.js';

// spec appendices §Cryptographic Test Vectors
const SEED = 'YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1';
const testKey = () => signingKeyFromSeed('1', decodeBase64(SEED));

test('the test-vector key', () => {
  const key = testKey();
  assert.equal(key.keyId, 'ed25519:1');
  assert.equal(key.publicKey.length, 32);
  // The public key for this seed, cross-checked with Python's `cryptography` package.
  assert.equal(encodePublicKey(key), 'XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
});

test('JSON signing test vectors', () => {
  const key = testKey();
  assert.deepEqual(signJson({}, 'domain', key), {
    signatures: {
      domain: {
        'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
      },
    },
  });
  assert.deepEqual(signJson({ one: 1, two: 'Two' }, 'domain', key), {
    one: 1,
    signatures: {
      domain: {
        'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
      },
    },
    two: 'Two',
  });
});

test('signing ignores unsigned and existing signatures, keeps them, and does not mutate', () => {
  const key = testKey();
  const input: JsonObject = {
    one: 1,
    two: 'Two',
    unsigned: { age_ts: 5 },
    signatures: { other: { 'ed25519:x': 'abc' }, domain: { 'ed25519:0': 'old' } },
  };
  const before = structuredClone(input);
  const signed = signJson(input, 'domain', key);
  assert.deepEqual(input, before);
  assert.deepEqual(signed.unsigned, { age_ts: 5 });
  assert.deepEqual(signed.signatures, {
    other: { 'ed25519:x': 'abc' },
    domain: {
      'ed25519:0': 'old',
      'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
    },
  });
  assert.deepEqual(signatureKeyIds(signed, 'domain'), ['ed25519:0', 'ed25519:1']);
  assert.deepEqual(signatureKeyIds(signed, 'nobody'), []);
});

test('verifying signatures', () => {
  const key = testKey();
  const signed = signJson({ one: 1, two: 'Two', unsigned: { x: 1 } }, 'domain', key);
  const pub = encodePublicKey(key);
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', pub));
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', key.publicKey));
  // URL-safe / padded forms of the key are accepted too.
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', Buffer.from(key.publicKey).toString('base64url')));
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', Buffer.from(key.publicKey).toString('base64')));
  // unsigned is not covered; everything else is.
  assert.ok(verifyJsonSignature({ ...signed, unsigned: { y: 2 } }, 'domain', 'ed25519:1', pub));
  assert.ok(!verifyJsonSignature({ ...signed, one: 2 }, 'domain', 'ed25519:1', pub));
  // Wrong entity, key id, key; malformed signature or key: false, never a throw.
  const other = generateSigningKey();
  assert.ok(!verifyJsonSignature(signed, 'elsewhere', 'ed25519:1', pub));
  assert.ok(!verifyJsonSignature(signed, 'domain', 'ed25519:2', pub));
  assert.ok(!verifyJsonSignature(signed, 'domain', 'ed25519:1', other.publicKey));
  assert.ok(!verifyJsonSignature(signed, 'domain', 'ed25519:1', 'not base64!'));
  assert.ok(!verifyJsonSignature(signed, 'domain', 'ed25519:1', 'AAAA'));
  assert.ok(!verifyJsonSignature({ ...signed, signatures: { domain: { 'ed25519:1': '***' } } }, 'domain', 'ed25519:1', pub));
  assert.ok(!verifyJsonSignature({ ...signed, signatures: { domain: { 'ed25519:1': 'AAAA' } } }, 'domain', 'ed25519:1', pub));
  assert.ok(!verifyJsonSignature({ ...signed, signatures: 'x' }, 'domain', 'ed25519:1', pub));
  assert.ok(!verifyJsonSignature({ ...signed, one: 1.5 }, 'domain', 'ed25519:1', pub));
});

test('public KeyObjects are cached and malformed keys are refused', () => {
  const key = generateSigningKey('abc');
  assert.equal(publicKeyObject(key.publicKey), publicKeyObject(encodeBase64(key.publicKey)));
  assert.throws(() => publicKeyObject(new Uint8Array(31)), SigningKeyError);
  assert.throws(() => publicKeyObject('%%%'), SigningKeyError);
});

test('generated keys', () => {
  const a = generateSigningKey();
  const b = generateSigningKey('xyz_1');
  assert.match(a.keyId, /^ed25519:a_[A-Za-z]{4}$/);
  assert.equal(b.keyId, 'ed25519:xyz_1');
  assert.notDeepEqual(a.seed, b.seed);
  assert.throws(() => generateSigningKey('bad-version'), SigningKeyError);
  assert.throws(() => signingKeyFromSeed('1', new Uint8Array(16)), SigningKeyError);
  const signed = signJson({ hello: 'world' }, 'me', b);
  assert.ok(verifyJsonSignature(signed, 'me', b.keyId, b.publicKey));
});

test('signing key file: round trip in Synapse format', () => {
  const text = `ed25519 1 ${SEED}\n`;
  const keys = parseSigningKeyFile(text);
  assert.equal(keys.length, 1);
  assert.equal(keys[0]!.keyId, 'ed25519:1');
  assert.equal(encodePublicKey(keys[0]!), 'XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
  // We write canonical (zero trailing bits) base64, which decodes to the same seed.
  const written = formatSigningKeyFile(keys);
  assert.match(written, /^ed25519 1 [A-Za-z0-9+/]{43}\n$/);
  assert.deepEqual(parseSigningKeyFile(written)[0]!.seed, keys[0]!.seed);

  const two = [generateSigningKey('a_old'), generateSigningKey('a_new')];
  const reread = parseSigningKeyFile(formatSigningKeyFile(two));
  assert.deepEqual(
    reread.map((k) => [k.keyId, encodePublicKey(k)]),
    two.map((k) => [k.keyId, encodePublicKey(k)]),
  );
  // No trailing newline, CRLF, blank lines, extra spaces: all fine.
  assert.equal(parseSigningKeyFile(`ed25519 1 ${SEED}`).length, 1);
  assert.equal(parseSigningKeyFile(`\r\n  ed25519   1 ${SEED}  \r\n\r\n`).length, 1);
});

test('signing key file: garbage is refused with a clear error', () => {
  const cases: [string, RegExp][] = [
    ['', /no keys/],
    ['\n\n', /no keys/],
    ['hello', /line 1: expected/],
    [`ed25519 1 ${SEED} extra`, /line 1: expected/],
    [`rsa 1 ${SEED}`, /unsupported algorithm rsa/],
    [`ed25519 bad-version ${SEED}`, /key version/],
    ['ed25519 1 not*base64', /line 1: the seed is not base64/],
    ['ed25519 1 Zm9vYmFy', /32 bytes, got 6/],
    [`ed25519 1 ${SEED}\ned25519 1 ${SEED}`, /line 2: duplicate key ed25519:1/],
    ['-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----', /line 1/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseSigningKeyFile(text),
      (err: unknown) => {
        assert.ok(err instanceof SigningKeyError, String(err));
        assert.match(err.message, message);
        return true;
      },
    );
  }
});
