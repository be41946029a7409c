import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CanonicalJsonError,
  checkCanonicalJsonValues,
  compareCodePoints,
  encodeCanonicalJson,
  encodeCanonicalJsonBytes,
  encodeCanonicalJsonWithout,
  isCanonicalJsonValue,
} from '../../src/core/canonical-json.js';

test('the appendix examples', () => {
  const cases: [unknown, string][] = [
    [{}, '{}'],
    [{ one: 1, two: 'Two' }, '{"one":1,"two":"Two"}'],
    [{ b: '2', a: '1' }, '{"a":"1","b":"2"}'],
    [
      {
        auth: {
          success: true,
          mxid: '@john.doe:example.com',
          profile: {
            display_name: 'John Doe',
            three_pids: [
              { medium: 'email', address: 'john.doe@example.org' },
              { medium: 'msisdn', address: '123456789' },
            ],
          },
        },
      },
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",' +
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    [{ a: '日本語' }, '{"a":"日本語"}'],
    [{ 本: 2, 日: 1 }, '{"日":1,"本":2}'],
    [JSON.parse('{"a": "\\u65E5"}'), '{"a":"日"}'],
    [{ a: null }, '{"a":null}'],
    [JSON.parse('{"a": -0, "b": 1e10}'), '{"a":0,"b":10000000000}'],
  ];
  for (const [input, expected] of cases) assert.equal(encodeCanonicalJson(input), expected);
});

test('keys sort by code point, not UTF-16 code unit', () => {
  // U+1F600 is a surrogate pair (0xD83D 0xDE00) and sorts before U+FB01 by code unit, but after
  // it by code point. U+E000 (private use) is the classic trap.
  const astral = '\u{1F600}';
  const privateUse = '\uE000';
  const ligature = '\uFB01';
  const value = { [astral]: 3, [ligature]: 2, [privateUse]: 1, z: 0 };
  assert.equal(encodeCanonicalJson(value), `{"z":0,"${privateUse}":1,"${ligature}":2,"${astral}":3}`);
  assert.ok(compareCodePoints(astral, privateUse) > 0);
  assert.ok(compareCodePoints('a', 'ab') < 0);
  assert.equal(compareCodePoints('x', 'x'), 0);
  // Nested objects too, and an astral key among many ASCII keys.
  const nested = { outer: { b: 1, [astral]: 2, a: 3, [privateUse]: 4 } };
  assert.equal(encodeCanonicalJson(nested), `{"outer":{"a":3,"b":1,"${privateUse}":4,"${astral}":2}}`);
});

test('integer-like keys are sorted as strings, not enumerated first', () => {
  assert.equal(encodeCanonicalJson({ b: 1, 10: 2, 9: 3, a: 4 }), '{"10":2,"9":3,"a":4,"b":1}');
});

test('many keys (past the insertion-sort size) still sort', () => {
  const obj: Record<string, number> = {};
  const keys = Array.from({ length: 40 }, (_, i) => `k${(i * 7919) % 1000}`);
  for (const k of keys) obj[k] = 1;
  const out = JSON.parse(encodeCanonicalJson(obj)) as object;
  assert.deepEqual(
    Object.keys(out).filter((k) => !/^\d+$/.test(k)),
    [...keys].sort(),
  );
  assert.equal(
    encodeCanonicalJson(obj),
    `{${[...keys]
      .sort()
      .map((k) => `"${k}":1`)
      .join(',')}}`,
  );
});

test('strings are escaped as the grammar says, non-ASCII stays raw', () => {
  assert.equal(encodeCanonicalJson('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(encodeCanonicalJson('\b\t\n\f\r'), '"\\b\\t\\n\\f\\r"');
  assert.equal(encodeCanonicalJson('\u0000\u0001\u000b\u001f'), '"\\u0000\\u0001\\u000b\\u001f"');
  assert.equal(encodeCanonicalJson('/\u007f\u2028é🥊'), '"/\u007f\u2028é🥊"');
  assert.equal(encodeCanonicalJson({ 'k"ey\n': 1 }), '{"k\\"ey\\n":1}');
  assert.deepEqual(encodeCanonicalJsonBytes({ a: 'é' }), Buffer.from('{"a":"é"}', 'utf8'));
});

test('numbers: integers within ±(2^53−1) only; -0 is 0', () => {
  const max = 2 ** 53 - 1;
  assert.equal(encodeCanonicalJson([max, -max, -0, 0]), `[${max},${-max},0,0]`);
  for (const bad of [2 ** 53, -(2 ** 53), 1.5, 0.1, -1e-7, NaN, Infinity, -Infinity, 1e300]) {
    assert.throws(() => encodeCanonicalJson({ a: [bad] }), CanonicalJsonError, String(bad));
  }
  const err = (() => {
    try {
      encodeCanonicalJson({ content: { list: [1, 2.5] } });
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof CanonicalJsonError);
  assert.equal(err.path, 'content.list[1]');
});

test('relaxed mode (room versions 1–5) writes floats and big integers', () => {
  assert.equal(
    encodeCanonicalJson({ a: 1.5, b: 2 ** 53, c: 1e21, d: -0 }, { relaxed: true }),
    '{"a":1.5,"b":9007199254740992,"c":1000000000000000000000,"d":0}',
  );
  assert.throws(() => encodeCanonicalJson({ a: NaN }, { relaxed: true }), CanonicalJsonError);
});

test('non-JSON values are refused with CanonicalJsonError', () => {
  for (const bad of [undefined, () => 1, Symbol('x'), 1n, new Date(0), new Map(), { a: undefined }, ['\ud800'], { ['\udc00']: 1 }]) {
    assert.throws(() => encodeCanonicalJson(bad), CanonicalJsonError);
  }
  // Well-formed surrogate pairs are fine.
  assert.equal(encodeCanonicalJson('\ud83d\ude00'), '"😀"');
  // Objects without a prototype are plain objects.
  const bare = Object.create(null) as Record<string, number>;
  bare.x = 1;
  assert.equal(encodeCanonicalJson(bare), '{"x":1}');
});

test('nesting is bounded instead of overflowing the stack', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 5000; i++) deep = [deep];
  assert.throws(() => encodeCanonicalJson(deep), CanonicalJsonError);
  assert.match(checkCanonicalJsonValues(deep) ?? '', /nested too deeply/);
  let ok: unknown = 1;
  for (let i = 0; i < 500; i++) ok = { a: ok };
  assert.ok(encodeCanonicalJson(ok).startsWith('{"a":{"a":'));
});

test('cyclic structures fail with CanonicalJsonError', () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => encodeCanonicalJson(cyclic), CanonicalJsonError);
});

test('encodeCanonicalJsonWithout leaves out top-level keys only', () => {
  const value = { signatures: { x: 1 }, unsigned: { age: 1 }, a: { signatures: 2 }, b: 1 };
  assert.equal(encodeCanonicalJsonWithout(value, new Set(['signatures', 'unsigned'])), '{"a":{"signatures":2},"b":1}');
  assert.equal(encodeCanonicalJsonWithout({ signatures: 1 }, new Set(['signatures'])), '{}');
  assert.throws(() => encodeCanonicalJsonWithout({ a: 0.5, signatures: 1 }, new Set(['signatures'])), CanonicalJsonError);
  assert.equal(encodeCanonicalJsonWithout({ a: 1, signatures: 0.5 }, new Set(['signatures'])), '{"a":1}');
});

test('checkCanonicalJsonValues reports the first offending value', () => {
  assert.equal(checkCanonicalJsonValues({ a: [1, 'x', null, true, { b: -5 }] }), undefined);
  assert.equal(checkCanonicalJsonValues(JSON.parse('{"a": {"b": 1.5}}')), '1.5 is not an integer at a.b');
  assert.match(checkCanonicalJsonValues(JSON.parse('{"n": 9007199254740992}')) ?? '', /outside/);
  assert.match(checkCanonicalJsonValues(JSON.parse('{"n": -9007199254740992}')) ?? '', /outside/);
  assert.equal(checkCanonicalJsonValues(JSON.parse('{"n": -9007199254740991}')), undefined);
  assert.ok(isCanonicalJsonValue({ a: 1 }));
  assert.ok(!isCanonicalJsonValue({ a: 1e100 }));
});
