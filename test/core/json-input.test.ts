// parseJsonInput: JSON from outside is refused when it nests too deeply, holds a lone surrogate,
// holds U+0000 (unless allowed) or a number beyond the double range; everything else parses as
// JSON.parse would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonInputError, MAX_JSON_DEPTH, parseJsonInput, type JsonInputProblem } from '../../src/core/json.js';

function problemOf(text: string, options?: Parameters<typeof parseJsonInput>[1]): JsonInputProblem | undefined {
  try {
    parseJsonInput(text, options);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof JsonInputError, String(err));
    return err.problem;
  }
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

test('nesting: up to MAX_JSON_DEPTH levels parse, one more is refused before anything is built', () => {
  assert.equal(MAX_JSON_DEPTH, 100);
  assert.equal(problemOf(`{"x":${nested(MAX_JSON_DEPTH - 1)}}`), undefined);
  assert.equal(problemOf(`{"x":${nested(MAX_JSON_DEPTH)}}`), 'depth');
  assert.equal(problemOf(`{"a":{"b":{"c":[{"d":[]}]}}}`, { maxDepth: 6 }), undefined);
  assert.equal(problemOf(`{"a":{"b":{"c":[{"d":[]}]}}}`, { maxDepth: 5 }), 'depth');
  // 100,000 levels (the probe's /register body): refused, not a stack overflow.
  assert.equal(problemOf(`{"x":${nested(100_000)}}`), 'depth');
  // An unclosed deep text is refused for its depth too.
  assert.equal(problemOf('['.repeat(200)), 'depth');
  // Siblings do not add up.
  assert.equal(problemOf(`[${Array.from({ length: 500 }, () => nested(50)).join(',')}]`), undefined);
});

test('nesting: brackets inside strings do not count, escaped quotes do not end a string', () => {
  assert.deepEqual(parseJsonInput(`{"x":"${'['.repeat(500)}"}`), { x: '['.repeat(500) });
  assert.deepEqual(parseJsonInput(`{"x\\"[[[":"\\\\","y":"\\"{{{{"}`, { maxDepth: 1 }), { 'x"[[[': '\\', y: '"{{{{' });
  // After an escaped backslash the quote does end the string: the brackets after it count.
  assert.equal(problemOf(`["\\\\",${nested(3)}]`, { maxDepth: 3 }), 'depth');
});

test('lone surrogates are refused in values and keys; pairs, escaped or not, are fine', () => {
  for (const text of ['{"n":"a\\ud800b"}', '{"n":"\\udc00"}', '{"n":"\\ud83d"}', '{"\\ud800":1}', '["x\\ude00\\ud83d"]', '"\ud800"']) {
    assert.equal(problemOf(text), 'surrogate', text);
  }
  assert.deepEqual(parseJsonInput('{"n":"\\ud83d\\ude00","m":"😀"}'), { n: '😀', m: '😀' });
});

test('U+0000 is refused in values and keys unless allowed; an escaped backslash before u0000 is text', () => {
  assert.equal(problemOf('{"user":"\\u0000"}'), 'nul');
  assert.equal(problemOf('{"a\\u0000b":1}'), 'nul');
  assert.equal(problemOf('[[{"deep":["x\\u0000"]}]]'), 'nul');
  assert.deepEqual(parseJsonInput('{"body":"a\\u0000b"}', { allowNul: true }), { body: 'a\u0000b' });
  assert.deepEqual(parseJsonInput('{"body":"\\\\u0000"}'), { body: '\\u0000' });
});

test('numbers beyond the double range are refused; large finite ones parse', () => {
  for (const text of ['[1e400]', '{"x":-1E+400}', `[${'9'.repeat(400)}]`]) assert.equal(problemOf(text), 'number', text);
  // 2^53 + 1 parses to the nearest double, 2^53.
  assert.deepEqual(parseJsonInput('[1e308, -1.5e300, 9007199254740993]'), [1e308, -1.5e300, 9007199254740992]);
  assert.deepEqual(parseJsonInput('{"s":"1e400"}'), { s: '1e400' });
});

test('text that is not JSON is a syntax problem', () => {
  for (const text of ['{', '{"a":}', 'nul', '', '{"a":"\u0000"}', "{'a':1}"]) assert.equal(problemOf(text), 'syntax', JSON.stringify(text));
});
