import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isHistoricalLocalpart,
  isValidEventId,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  isValidUserLocalpart,
  parseRoomAlias,
  parseServerName,
  parseUserId,
  serverNameOf,
} from '../../src/core/identifiers.js';
import { getRoomVersion } from '../../src/core/room-versions.js';

test('server names: the appendix examples and their parts', () => {
  assert.deepEqual(parseServerName('matrix.org'), { host: 'matrix.org', port: undefined });
  assert.deepEqual(parseServerName('matrix.org:8888'), { host: 'matrix.org', port: 8888 });
  assert.deepEqual(parseServerName('1.2.3.4'), { host: '1.2.3.4', port: undefined });
  assert.deepEqual(parseServerName('1.2.3.4:1234'), { host: '1.2.3.4', port: 1234 });
  assert.deepEqual(parseServerName('[1234:5678::abcd]'), { host: '[1234:5678::abcd]', port: undefined });
  assert.deepEqual(parseServerName('[1234:5678::abcd]:5678'), { host: '[1234:5678::abcd]', port: 5678 });
  for (const ok of ['localhost', 'a-b.c', 'MATRIX.ORG', 'x', '[::1]', '[::ffff:1.2.3.4]:8448', 'host:1']) {
    assert.ok(isValidServerName(ok), ok);
  }
});

test('server names: invalid ones', () => {
  const bad = [
    '',
    ':8448',
    'matrix.org:',
    'matrix.org:123456',
    'matrix.org:80a',
    'matrix.org:80:80',
    'mat rix.org',
    'matrix_org',
    'matrix.org.',
    '.matrix.org',
    'a..b',
    'ü.example',
    '[1234::abcd',
    '[]',
    '[:::]',
    '[1234::abcd]8448',
    '[g::1]',
    '[1234::abcd]:',
    '1234::abcd',
    'a'.repeat(256),
  ];
  for (const name of bad) assert.ok(!isValidServerName(name), JSON.stringify(name));
});

test('user ids: the current grammar for new users', () => {
  for (const ok of ['alice', 'a.b_c=d-e/f+g', '0', 'x'.repeat(200)]) assert.ok(isValidUserLocalpart(ok), ok);
  for (const bad of ['', 'Alice', 'a b', 'a:b', 'a#b', 'é', 'a*']) assert.ok(!isValidUserLocalpart(bad), bad);
  assert.ok(isValidUserId('@alice:example.org', { strict: true }));
  assert.ok(!isValidUserId('@Alice:example.org', { strict: true }));
  assert.deepEqual(parseUserId('@alice:example.org:8448'), { localpart: 'alice', serverName: 'example.org:8448' });
  assert.deepEqual(parseUserId('@a:[::1]:8448'), { localpart: 'a', serverName: '[::1]:8448' });
});

test('user ids: historical localparts are accepted when parsing', () => {
  for (const ok of ['@Alice:example.org', '@:example.org', '@a b:example.org', '@🥊\u0001:example.org', '@"quoted":x']) {
    assert.ok(isValidUserId(ok), ok);
  }
  for (const bad of [
    'alice:example.org',
    '@alice',
    '@alice:',
    '@alice:bad_server',
    '#alice:example.org',
    '@a\u0000b:example.org',
    '@\ud800:example.org', // lone surrogate
    42,
    null,
  ]) {
    assert.ok(!isValidUserId(bad), String(bad));
  }
  assert.ok(isHistoricalLocalpart(''));
  assert.ok(!isHistoricalLocalpart('a:b'));
});

test('identifiers are limited to 255 bytes, sigil and domain included', () => {
  const at255 = `@${'a'.repeat(255 - '@:x.org'.length)}:x.org`;
  assert.equal(Buffer.byteLength(at255), 255);
  assert.ok(isValidUserId(at255));
  assert.ok(!isValidUserId(`@a${at255.slice(1)}`));
  // Bytes, not characters: 100 × 'é' is 200 bytes.
  assert.ok(!isValidUserId(`@${'é'.repeat(127)}:x.org`));
  assert.ok(isValidUserId(`@${'é'.repeat(120)}:x.org`));
  assert.ok(isValidUserId(`@${'é'.repeat(127)}:x.org`, { skipLengthCheck: true }));
  assert.ok(!isValidRoomAlias(`#${'a'.repeat(250)}:x.org`));
});

test('room aliases', () => {
  assert.deepEqual(parseRoomAlias('#room:example.org'), { localpart: 'room', serverName: 'example.org' });
  assert.ok(isValidRoomAlias('#Räume mit Leerzeichen:example.org'));
  assert.ok(!isValidRoomAlias('room:example.org'));
  assert.ok(!isValidRoomAlias('#room'));
  assert.ok(!isValidRoomAlias('#ro\u0000om:example.org'));
});

test('room ids by room version', () => {
  const v11 = getRoomVersion('11')!;
  const v12 = getRoomVersion('12')!;
  const hashId = '!4dEAfJHDIcb1BiKLujWkE-d3e3tCe25RRYYFfhkgcD4';
  assert.ok(isValidRoomId('!opaque:example.org', v11));
  assert.ok(!isValidRoomId('!opaque:example.org', v12));
  assert.ok(isValidRoomId(hashId, v12));
  assert.ok(!isValidRoomId(hashId, v11)); // no domain
  assert.ok(isValidRoomId(hashId) && isValidRoomId('!opaque:example.org'));
  assert.ok(!isValidRoomId('!4dEAfJHDIcb1BiKLujWkE+d3e3tCe25RRYYFfhkgcD4', v12)); // standard alphabet
  assert.ok(!isValidRoomId('!short', v12));
  assert.ok(!isValidRoomId('$opaque:example.org'));
  assert.ok(!isValidRoomId(undefined));
});

test('event ids by format', () => {
  const v3 = '$JC9UAaIebCF5s+/iWowtE1Jqgdyo4Tpz0u4sgzQYD6I';
  const v4 = '$JC9UAaIebCF5s-_iWowtE1Jqgdyo4Tpz0u4sgzQYD6I';
  const plain = '$JC9UAaIebCF5sIIiWowtE1Jqgdyo4Tpz0u4sgzQYD6I'; // valid in both alphabets
  assert.ok(isValidEventId('$abc:example.org', 'v1'));
  assert.ok(!isValidEventId(v3, 'v1'));
  assert.ok(isValidEventId(v3, 'v3') && !isValidEventId(v3, 'v4'));
  assert.ok(isValidEventId(v4, 'v4') && !isValidEventId(v4, 'v3'));
  assert.ok(isValidEventId(plain, 'v3') && isValidEventId(plain, 'v4'));
  for (const any of [v3, v4, '$abc:example.org']) assert.ok(isValidEventId(any), any);
  for (const bad of ['', '$', 'abc', `${v4}A`, v4.slice(0, -1), '$abc', '!abc:x', 7]) {
    assert.ok(!isValidEventId(bad), String(bad));
  }
});

test('serverNameOf', () => {
  assert.equal(serverNameOf('@a:example.org:8448'), 'example.org:8448');
  assert.equal(serverNameOf('!r:[::1]'), '[::1]');
  assert.equal(serverNameOf('$abcdef'), undefined);
});
