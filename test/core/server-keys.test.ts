import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBase64 } from '../../src/core/base64.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import {
  MAX_KEY_VALIDITY_AFTER_FETCH_MS,
  buildKeyQueryBody,
  buildOwnServerKeys,
  checkSelfSignature,
  isKeyUsableForEvent,
  isKeyUsableForRequest,
  isStoredKeysAnswerFresh,
  mergeVerifyKey,
  minimumKeyValidityForEvent,
  notarise,
  ownVerifyKeys,
  parseKeyQueryRequest,
  parseMinimumValidUntilParam,
  parseServerKeys,
  shouldRebuildOwnServerKeys,
  validateNotaryResponse,
  validateServerKeysResponse,
  verifyKeysOf,
  type ServerVerifyKey,
} from '../../src/core/server-keys.js';
import { encodePublicKey, generateSigningKey, signJson, signingKeyFromSeed } from '../../src/core/signing.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 0, 1);
// spec appendices §Cryptographic Test Vectors
const specKey = signingKeyFromSeed('1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
const otherKey = generateSigningKey('other');
const notaryKey = generateSigningKey('notary1');

const OLD = { keyId: 'ed25519:0ldK3y', publicKey: encodePublicKey(generateSigningKey('x')), expiredTs: NOW - 30 * DAY };

function published(overrides: Partial<Parameters<typeof buildOwnServerKeys>[0]> = {}): JsonObject {
  return buildOwnServerKeys({
    serverName: 'a.example',
    signingKeys: [specKey],
    oldKeys: [OLD],
    now: NOW,
    keyRefreshIntervalMs: DAY,
    ...overrides,
  });
}

test('our published keys: verify_keys, old_verify_keys, valid_until_ts = now + key_refresh_interval, signed by every current key', () => {
  const body = buildOwnServerKeys({
    serverName: 'a.example',
    signingKeys: [specKey, otherKey],
    oldKeys: [OLD],
    now: NOW,
    keyRefreshIntervalMs: DAY,
  });
  assert.equal(body.server_name, 'a.example');
  assert.equal(body.valid_until_ts, NOW + DAY);
  assert.deepEqual(body.verify_keys, {
    'ed25519:1': { key: 'XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI' },
    'ed25519:other': { key: encodePublicKey(otherKey) },
  });
  assert.deepEqual(body.old_verify_keys, { 'ed25519:0ldK3y': { key: OLD.publicKey, expired_ts: OLD.expiredTs } });
  assert.deepEqual(Object.keys((body.signatures as JsonObject)['a.example'] as JsonObject).sort(), ['ed25519:1', 'ed25519:other']);
  const checked = validateServerKeysResponse(body, 'a.example');
  assert.ok(checked.ok);
  assert.equal(checked.keys.verifyKeys.size, 2);
  // A current key is never also listed as old.
  const dup = buildOwnServerKeys({
    serverName: 'a.example',
    signingKeys: [specKey],
    oldKeys: [{ ...OLD, keyId: 'ed25519:1' }],
    now: NOW,
    keyRefreshIntervalMs: DAY,
  });
  assert.deepEqual(dup.old_verify_keys, {});
  assert.throws(() => buildOwnServerKeys({ serverName: 'a.example', signingKeys: [], now: NOW, keyRefreshIntervalMs: DAY }));
});

test('rebuilding our answer once half the refresh interval is used up', () => {
  assert.equal(shouldRebuildOwnServerKeys(NOW + DAY, DAY, NOW), false);
  assert.equal(shouldRebuildOwnServerKeys(NOW + DAY, DAY, NOW + DAY / 2 - 1), false);
  assert.equal(shouldRebuildOwnServerKeys(NOW + DAY, DAY, NOW + DAY / 2 + 1), true);
});

test('a server keys answer must be for the server asked and signed by its own current key', () => {
  assert.equal(validateServerKeysResponse(published(), 'b.example').ok, false);
  assert.deepEqual((validateServerKeysResponse(published(), 'b.example') as { error: { code: string } }).error.code, 'wrong-server');
  // Signed only by a key it does not list.
  const unlisted = signJson({ ...published(), signatures: {} }, 'a.example', otherKey);
  assert.equal((validateServerKeysResponse(unlisted, 'a.example') as { error: { code: string } }).error.code, 'not-self-signed');
  // Signed by nobody.
  const { signatures: _drop, ...bare } = published();
  assert.equal(validateServerKeysResponse({ ...bare, signatures: {} }, 'a.example').ok, false);
  // Tampered after signing.
  const tampered = { ...published(), valid_until_ts: NOW + 365 * DAY };
  assert.equal((validateServerKeysResponse(tampered, 'a.example') as { error: { code: string } }).error.code, 'bad-self-signature');
  // One good and one bad signature by listed keys: refused.
  const both = buildOwnServerKeys({ serverName: 'a.example', signingKeys: [specKey, otherKey], now: NOW, keyRefreshIntervalMs: DAY });
  const sigs = both.signatures as Record<string, Record<string, string>>;
  const forged = { ...both, signatures: { 'a.example': { ...sigs['a.example'], 'ed25519:other': sigs['a.example']!['ed25519:1']! } } };
  assert.equal((validateServerKeysResponse(forged, 'a.example') as { error: { code: string } }).error.code, 'bad-self-signature');
  // A signature by a listed old key is not needed and not looked at.
  assert.ok(validateServerKeysResponse(signJson(published(), 'a.example', generateSigningKey('0ldK3y')), 'a.example').ok);
});

test('malformed server keys answers', () => {
  const good = published();
  const cases: Array<[string, unknown]> = [
    ['not an object', []],
    ['no server_name', { ...good, server_name: undefined }],
    ['bad server_name', { ...good, server_name: 'not a name' }],
    ['float valid_until_ts', { ...good, valid_until_ts: 1.5 }],
    ['string valid_until_ts', { ...good, valid_until_ts: '1' }],
    ['no verify_keys', { ...good, verify_keys: undefined }],
    ['verify_keys array', { ...good, verify_keys: [] }],
    ['key not base64', { ...good, verify_keys: { 'ed25519:1': { key: '!!' } } }],
    ['key of 31 bytes', { ...good, verify_keys: { 'ed25519:1': { key: 'A'.repeat(41) } } }],
    ['key entry not object', { ...good, verify_keys: { 'ed25519:1': 'XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI' } }],
    ['old key without expired_ts', { ...good, old_verify_keys: { 'ed25519:o': { key: OLD.publicKey } } }],
    ['old_verify_keys not object', { ...good, old_verify_keys: 5 }],
    ['signatures not object', { ...good, signatures: 'x' }],
  ];
  for (const [name, json] of cases) {
    const result = parseServerKeys(JSON.parse(JSON.stringify(json ?? null)) as unknown);
    assert.equal(result.ok, false, name);
    assert.equal(!result.ok && result.error.code, 'malformed', name);
  }
  // Keys of other algorithms are ignored, not refused; old_verify_keys may be absent.
  const { old_verify_keys: _o, ...noOld } = good;
  const parsed = parseServerKeys({ ...noOld, verify_keys: { ...(good.verify_keys as JsonObject), 'curve25519:x': { key: 1 } } });
  assert.ok(parsed.ok);
  assert.deepEqual([...parsed.keys.verifyKeys.keys()], ['ed25519:1']);
  assert.equal(parsed.keys.oldVerifyKeys.size, 0);
});

test("the spec's example answer: placeholder keys are refused, the shape is read", () => {
  const example = {
    server_name: 'example.org',
    verify_keys: { 'ed25519:abc123': { key: 'VGhpcyBzaG91bGQgYmUgYSByZWFsIGVkMjU1MTkgcGF5bG9hZA' } },
    old_verify_keys: {
      'ed25519:0ldk3y': { expired_ts: 1532645052628, key: 'VGhpcyBzaG91bGQgYmUgeW91ciBvbGQga2V5J3MgZWQyNTUxOSBwYXlsb2FkLg' },
    },
    signatures: { 'example.org': { 'ed25519:auto2': 'VGhpcyBzaG91bGQgYWN0dWFsbHkgYmUgYSBzaWduYXR1cmU' } },
    valid_until_ts: 1652262000000,
  };
  // Its keys decode to English text ("This should be a real ed25519 payload"), not 32 bytes.
  const placeholder = parseServerKeys(example);
  assert.equal(!placeholder.ok && placeholder.error.code, 'malformed');
  const real = encodePublicKey(otherKey);
  const parsed = parseServerKeys({
    ...example,
    verify_keys: { 'ed25519:abc123': { key: real } },
    old_verify_keys: { 'ed25519:0ldk3y': { expired_ts: 1532645052628, key: OLD.publicKey } },
  });
  assert.ok(parsed.ok);
  assert.equal(parsed.keys.serverName, 'example.org');
  assert.equal(parsed.keys.validUntilTs, 1652262000000);
  assert.equal(parsed.keys.verifyKeys.get('ed25519:abc123'), real);
  assert.deepEqual(parsed.keys.oldVerifyKeys.get('ed25519:0ldk3y'), { publicKey: OLD.publicKey, expiredTs: 1532645052628 });
  // Signed by `ed25519:auto2`, which it does not list: not self-signed.
  assert.equal(checkSelfSignature(parsed.keys)?.code, 'not-self-signed');
});

test('verify keys get valid_until_ts capped at 7 days after the fetch; old keys their expired_ts', () => {
  const far = validateServerKeysResponse(published({ keyRefreshIntervalMs: 365 * DAY }), 'a.example');
  assert.ok(far.ok);
  const fetchedAt = NOW + 1000;
  const keys = verifyKeysOf(far.keys, fetchedAt);
  assert.deepEqual(keys, [
    {
      serverName: 'a.example',
      keyId: 'ed25519:1',
      publicKey: encodePublicKey(specKey),
      validUntilTs: fetchedAt + MAX_KEY_VALIDITY_AFTER_FETCH_MS,
      old: false,
    },
    { serverName: 'a.example', keyId: OLD.keyId, publicKey: OLD.publicKey, validUntilTs: OLD.expiredTs, old: true },
  ]);
  const near = validateServerKeysResponse(published(), 'a.example');
  assert.ok(near.ok);
  assert.equal(verifyKeysOf(near.keys, fetchedAt)[0]!.validUntilTs, NOW + DAY);
  // A key listed as both current and old counts as old.
  const both = parseServerKeys({
    ...published(),
    old_verify_keys: { 'ed25519:1': { key: encodePublicKey(specKey), expired_ts: NOW - 1 } },
  });
  assert.ok(both.ok);
  assert.deepEqual(
    verifyKeysOf(both.keys, NOW).map((k) => [k.keyId, k.old, k.validUntilTs]),
    [['ed25519:1', true, NOW - 1]],
  );
});

test('which keys count: v1-4 any known key, v5+ keys valid at origin_server_ts, requests only current keys valid now', () => {
  const v4 = getRoomVersion('4')!;
  const v5 = getRoomVersion('5')!;
  const v12 = getRoomVersion('12')!;
  assert.equal(minimumKeyValidityForEvent(NOW, v4), 0);
  assert.equal(minimumKeyValidityForEvent(NOW, v5), NOW);
  assert.equal(minimumKeyValidityForEvent(NOW, v12), NOW);
  const current: ServerVerifyKey = { serverName: 's', keyId: 'ed25519:a', publicKey: 'k', validUntilTs: NOW + DAY, old: false };
  const old: ServerVerifyKey = { ...current, keyId: 'ed25519:o', validUntilTs: NOW - DAY, old: true };
  assert.ok(isKeyUsableForEvent(current, NOW));
  assert.ok(isKeyUsableForEvent(old, NOW - DAY), 'an old key covers events up to its expiry');
  assert.ok(!isKeyUsableForEvent(old, NOW - DAY + 1));
  assert.ok(isKeyUsableForEvent(old, minimumKeyValidityForEvent(NOW, v4)));
  assert.ok(isKeyUsableForRequest(current, NOW));
  assert.ok(!isKeyUsableForRequest(current, NOW + DAY + 1));
  assert.ok(!isKeyUsableForRequest({ ...old, validUntilTs: NOW + DAY }, NOW), 'old keys never sign requests');
});

test('merging sightings of a key keeps the longest validity of the same key', () => {
  const a: ServerVerifyKey = { serverName: 's', keyId: 'ed25519:a', publicKey: 'k1', validUntilTs: 10, old: false };
  assert.equal(mergeVerifyKey(undefined, a), a);
  assert.equal(mergeVerifyKey(a, { ...a, validUntilTs: 5 }), a);
  assert.equal(mergeVerifyKey(a, { ...a, validUntilTs: 20 }).validUntilTs, 20);
  assert.equal(mergeVerifyKey(a, { ...a, publicKey: 'k2', validUntilTs: 5 }).publicKey, 'k2');
});

test('our own keys for local checks', () => {
  const keys = ownVerifyKeys('a.example', [specKey], [OLD]);
  assert.equal(keys.length, 2);
  assert.ok(isKeyUsableForRequest(keys[0]!, NOW + 1000 * DAY));
  assert.ok(keys[1]!.old);
});

test('notary answers: each entry signed by its server and by a known notary key', () => {
  const entryA = notarise(published(), 'notary.example', [notaryKey]);
  const entryB = notarise(
    buildOwnServerKeys({ serverName: 'b.example', signingKeys: [otherKey], now: NOW, keyRefreshIntervalMs: DAY }),
    'notary.example',
    [notaryKey],
  );
  const notaryVerifyKeys = { [notaryKey.keyId]: encodePublicKey(notaryKey) };
  const options = { notaryServerName: 'notary.example', notaryVerifyKeys };

  const good = validateNotaryResponse({ server_keys: [entryA, entryB] }, options);
  assert.deepEqual(
    good?.accepted.map((k) => k.serverName),
    ['a.example', 'b.example'],
  );
  assert.deepEqual(good?.rejected, []);
  // Both signatures survive on the stored JSON (re-servable).
  assert.deepEqual(Object.keys(good.accepted[0]!.json.signatures as JsonObject).sort(), ['a.example', 'notary.example']);

  const notNotarised = published();
  const wrongNotaryKey = notarise(published(), 'notary.example', [generateSigningKey('notary1')]);
  const unknownNotaryKey = notarise(published(), 'notary.example', [generateSigningKey('rotated')]);
  const forgedOrigin = notarise({ ...published(), valid_until_ts: NOW + 100 * DAY }, 'notary.example', [notaryKey]);
  const result = validateNotaryResponse(
    { server_keys: [notNotarised, wrongNotaryKey, unknownNotaryKey, forgedOrigin, 'junk', entryB] },
    options,
  );
  assert.deepEqual(
    result?.accepted.map((k) => k.serverName),
    ['b.example'],
  );
  assert.deepEqual(
    result?.rejected.map((r) => [r.index, r.serverName, r.error.code]),
    [
      [0, 'a.example', 'not-notary-signed'],
      [1, 'a.example', 'bad-notary-signature'],
      [2, 'a.example', 'not-notary-signed'],
      [3, 'a.example', 'bad-self-signature'],
      [4, undefined, 'malformed'],
    ],
  );
  // Without configured notary keys only the origins' signatures are checked.
  const trusting = validateNotaryResponse(
    { server_keys: [notNotarised, forgedOrigin] },
    { notaryServerName: 'notary.example', notaryVerifyKeys: undefined },
  );
  assert.deepEqual(
    trusting?.accepted.map((k) => k.serverName),
    ['a.example'],
  );
  assert.equal(trusting?.rejected[0]?.error.code, 'bad-self-signature');
  // The answer as a whole must hold a server_keys array.
  assert.equal(validateNotaryResponse({ server_keys: {} }, options), undefined);
  assert.equal(validateNotaryResponse([], options), undefined);
  assert.deepEqual(validateNotaryResponse({ server_keys: [] }, options), { accepted: [], rejected: [] });
  // A notary key id that collides with an Object prototype name is not a known key.
  const proto = validateNotaryResponse(
    { server_keys: [notarise(published(), 'notary.example', [generateSigningKey('constructor')])] },
    options,
  );
  assert.equal(proto?.rejected[0]?.error.code, 'not-notary-signed');
});

test('key queries: per-key minimum_valid_until_ts, defaulting to now', () => {
  const parsed = parseKeyQueryRequest(
    { server_keys: { 'a.example': { 'ed25519:1': { minimum_valid_until_ts: 123 }, 'ed25519:2': {} }, 'b.example:8448': {} } },
    NOW,
  );
  assert.ok(parsed.ok);
  assert.deepEqual(
    [...parsed.query.get('a.example')!],
    [
      ['ed25519:1', 123],
      ['ed25519:2', NOW],
    ],
  );
  assert.equal(parsed.query.get('b.example:8448')!.size, 0, 'no key ids: every key');
  assert.ok(parseKeyQueryRequest({ server_keys: {} }, NOW).ok);
  for (const bad of [
    null,
    {},
    { server_keys: [] },
    { server_keys: { 'a b': {} } },
    { server_keys: { a: [] } },
    { server_keys: { a: { k: 1 } } },
    { server_keys: { a: { k: { minimum_valid_until_ts: 'soon' } } } },
  ]) {
    assert.equal(parseKeyQueryRequest(bad, NOW).ok, false, JSON.stringify(bad));
  }
  assert.equal(parseMinimumValidUntilParam(undefined, NOW), NOW);
  assert.equal(parseMinimumValidUntilParam('1234', NOW), 1234);
  assert.equal(parseMinimumValidUntilParam('12x', NOW), undefined);
  assert.equal(parseMinimumValidUntilParam('99999999999999999', NOW), undefined);
});

test('a stored answer is served while valid for the time asked and in the first half of its life', () => {
  const stored = { fetchedAtTs: NOW, validUntilTs: NOW + 2 * DAY };
  assert.ok(isStoredKeysAnswerFresh(stored, NOW, NOW + DAY - 1));
  assert.ok(!isStoredKeysAnswerFresh(stored, NOW, NOW + DAY), 'half-life reached');
  assert.ok(!isStoredKeysAnswerFresh(stored, NOW + 3 * DAY, NOW), 'not valid long enough for the asker');
  assert.ok(isStoredKeysAnswerFresh(stored, NOW + 2 * DAY, NOW));
});

test('asking a notary: every key with its minimum_valid_until_ts, the later one when asked twice', () => {
  assert.deepEqual(
    buildKeyQueryBody([
      { serverName: 'a.example', keyId: 'ed25519:1', minimumValidUntilTs: 100 },
      { serverName: 'b.example', keyId: 'ed25519:x', minimumValidUntilTs: 0 },
      { serverName: 'a.example', keyId: 'ed25519:1', minimumValidUntilTs: 50 },
      { serverName: 'a.example', keyId: 'ed25519:2', minimumValidUntilTs: 7 },
    ]),
    {
      server_keys: {
        'a.example': { 'ed25519:1': { minimum_valid_until_ts: 100 }, 'ed25519:2': { minimum_valid_until_ts: 7 } },
        'b.example': { 'ed25519:x': { minimum_valid_until_ts: 0 } },
      },
    },
  );
  assert.deepEqual(buildKeyQueryBody([]), { server_keys: {} });
  // What we ask is what a notary (us included) reads back.
  const parsed = parseKeyQueryRequest(buildKeyQueryBody([{ serverName: 'a.example', keyId: 'ed25519:1', minimumValidUntilTs: 100 }]), NOW);
  assert.ok(parsed.ok);
  assert.deepEqual([...parsed.query.get('a.example')!], [['ed25519:1', 100]]);
});
