import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Base64Error,
  decodeBase64,
  decodeBase64Lenient,
  decodeBase64Url,
  encodeBase64,
  encodeBase64Url,
  tryDecodeBase64,
} from '../../src/core/base64.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

test('the appendix examples of unpadded base64', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [plain, encoded] of cases) {
    assert.equal(encodeBase64(bytes(plain)), encoded);
    assert.equal(decodeBase64(encoded).toString('latin1'), plain);
    assert.equal(decodeBase64Url(encoded).toString('latin1'), plain);
  }
});

test('URL-safe uses - and _ where standard uses + and /', () => {
  const data = new Uint8Array([0xfb, 0xff, 0xbf, 0xfe]);
  assert.equal(encodeBase64(data), '+/+//g');
  assert.equal(encodeBase64Url(data), '-_-__g');
  assert.deepEqual(new Uint8Array(decodeBase64Url('-_-__g')), data);
  assert.deepEqual(new Uint8Array(decodeBase64('+/+//g')), data);
  // Works on a view into a larger buffer.
  const big = new Uint8Array([9, 9, 0xfb, 0xff, 9]);
  assert.equal(encodeBase64(big.subarray(2, 4)), '+/8');
});

test('strict decoders refuse the other alphabet, padding, junk and impossible lengths', () => {
  for (const bad of ['Zg==', 'Zm9v=', '-_-_', 'Zm 9v', 'Zm9v\n', 'Z', 'Zm9vY', 'Zm9v!']) {
    assert.throws(() => decodeBase64(bad), Base64Error, bad);
  }
  for (const bad of ['Zg==', '+/+/', 'Z', 'a.b']) {
    assert.throws(() => decodeBase64Url(bad), Base64Error, bad);
  }
  assert.equal(tryDecodeBase64('Zm9v!'), undefined);
  assert.equal(tryDecodeBase64(42), undefined);
  assert.equal(tryDecodeBase64('Zm9v')?.toString(), 'foo');
});

test('non-zero trailing bits are accepted (the spec test-vector seed has them)', () => {
  const seed = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
  assert.equal(seed.length, 32);
  assert.equal(decodeBase64('Zh').toString(), 'f'); // 'Zg' is canonical
});

test('lenient decoding takes either alphabet, with or without padding', () => {
  const data = new Uint8Array([0xfb, 0xff, 0xbf, 0xfe]);
  for (const text of ['+/+//g', '-_-__g', '+/+//g==', '-_-__g==', '+_-//g']) {
    assert.deepEqual(new Uint8Array(decodeBase64Lenient(text)), data, text);
  }
  assert.equal(decodeBase64Lenient('Zm8=').toString(), 'fo');
  for (const bad of ['Zm8==', 'Zg=', 'Z===', '=Zg=', 'Zm9v====', 'Z', 'Zm 8', 'Zm=8']) {
    assert.throws(() => decodeBase64Lenient(bad), Base64Error, bad);
  }
});
