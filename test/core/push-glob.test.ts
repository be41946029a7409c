import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildGlobMatcher, globMatches, literalMatcher, wordsOf, type GlobMode } from '../../src/core/push/glob.js';

const whole = (pattern: string, value: string) => globMatches(pattern, value, 'whole');
const word = (pattern: string, value: string) => globMatches(pattern, value, 'word');

describe('glob: whole-value matching', () => {
  test('the spec example: lunc?* against topics', () => {
    assert.equal(whole('lunc?*', 'Lunch plans'), true);
    assert.equal(whole('lunc?*', 'LUNCH'), true);
    assert.equal(whole('lunc?*', ' lunch'), false); // leading space
    assert.equal(whole('lunc?*', 'lunc'), false); // ? needs a character
  });

  test('literals are whole and case-insensitive', () => {
    assert.equal(whole('m.room.message', 'm.room.message'), true);
    assert.equal(whole('m.room.message', 'M.Room.Message'), true);
    assert.equal(whole('m.room.message', 'm.room.messages'), false);
    assert.equal(whole('m.room.message', 'xm.room.message'), false);
    assert.equal(whole('', ''), true);
    assert.equal(whole('', 'x'), false);
  });

  test('* matches any run, including empty and newlines', () => {
    assert.equal(whole('*', ''), true);
    assert.equal(whole('*', 'anything at all'), true);
    assert.equal(whole('a*b', 'ab'), true);
    assert.equal(whole('a*b', 'a\nb'), true);
    assert.equal(whole('a*b', 'a---b'), true);
    assert.equal(whole('a*b', 'a---bc'), false);
    assert.equal(whole('*.example.org', 'matrix.example.org'), true);
    assert.equal(whole('@*:example.org', '@alice:example.org'), true);
    assert.equal(whole('@*:example.org', '@alice:example.com'), false);
  });

  test('? matches exactly one character (one code point)', () => {
    assert.equal(whole('a?c', 'abc'), true);
    assert.equal(whole('a?c', 'ac'), false);
    assert.equal(whole('a?c', 'abbc'), false);
    assert.equal(whole('a?c', 'a😀c'), true); // astral: one character, two UTF-16 units
    assert.equal(whole('??', '😀'), false);
  });

  test('runs of wildcards combine', () => {
    assert.equal(whole('a*?*b', 'ab'), false);
    assert.equal(whole('a*?*b', 'axb'), true);
    assert.equal(whole('a?*?b', 'axb'), false);
    assert.equal(whole('a?*?b', 'axyb'), true);
    assert.equal(whole('a**b', 'ab'), true);
  });

  test('regex metacharacters are literal', () => {
    assert.equal(whole('a.c', 'abc'), false);
    assert.equal(whole('a.c', 'a.c'), true);
    assert.equal(whole('(x)[y]+', '(x)[y]+'), true);
    assert.equal(whole('^$\\', '^$\\'), true);
  });
});

describe('glob: word matching (content.body)', () => {
  test('matches whole words only', () => {
    assert.equal(word('alice', 'hi alice!'), true);
    assert.equal(word('alice', 'Alice'), true);
    assert.equal(word('alice', 'malice'), false);
    assert.equal(word('alice', 'alices'), false);
    assert.equal(word('alice', 'alice_'), false); // _ is a word character
    assert.equal(word('alice', 'alice1'), false);
    assert.equal(word('alice', 'malice and alice'), true); // a later occurrence counts
    assert.equal(word('alice', 'hey,alice.'), true);
  });

  test('the spec example: ex*ple', () => {
    assert.equal(word('ex*ple', 'An example event.'), true);
    assert.equal(word('ex*ple', 'exple'), true);
    assert.equal(word('ex*ple', 'An exciting triple-whammy'), true);
    assert.equal(word('ex*ple', 'An examples event'), false);
  });

  test('patterns starting or ending with punctuation', () => {
    assert.equal(word('@room', 'hello @room'), true);
    assert.equal(word('@room', '@room: meeting'), true);
    assert.equal(word('@room', '@roomy'), false);
    assert.equal(word('@room', 'x@room'), true); // starts on a boundary character
  });

  test('non-ASCII letters are boundaries (the spec defines words as [A-Za-z0-9_])', () => {
    assert.equal(word('ana', 'anaïs'), true);
    assert.equal(word('café', 'un café noir'), true);
    assert.equal(word('CAFÉ', 'un café noir'), true);
  });

  test('wildcards in word mode', () => {
    assert.equal(word('c?t', 'the cat sat'), true);
    assert.equal(word('c?t', 'the cart sat'), false);
    assert.equal(word('c*t', 'the cart sat'), true);
    assert.equal(word('*', ''), true);
    assert.equal(word('b*', 'abc'), false);
  });

  test('adversarial patterns stay fast', () => {
    const body = 'a'.repeat(20_000);
    const start = performance.now();
    assert.equal(buildGlobMatcher('*a*a*a*a*a*b', 'word').test(body), false);
    assert.equal(buildGlobMatcher('*a*a*a*a*a*b', 'whole').test(body), false);
    assert.ok(performance.now() - start < 2_000);
  });

  test('literal matcher does not treat * and ? as wildcards', () => {
    assert.equal(literalMatcher('b?b', 'word').test('hi b?b'), true);
    assert.equal(literalMatcher('b?b', 'word').test('hi bob'), false);
    assert.equal(literalMatcher('*', 'word').test('anything'), false);
  });
});

/** A reference matcher built on RegExp (fine for tiny inputs; exponential in general). */
function referenceMatch(pattern: string, value: string, mode: GlobMode): boolean {
  let body = '';
  for (const ch of pattern.toLowerCase()) {
    if (ch === '*') body += '.*';
    else if (ch === '?') body += '.';
    else body += /[.*+?^${}()|[\]\\/]/.test(ch) ? `\\${ch}` : ch;
  }
  const edge = '(?:(?<![A-Za-z0-9_])|(?![A-Za-z0-9_]))';
  const source = mode === 'whole' ? `^${body}$` : `${edge}${body}${edge}`;
  return new RegExp(source, 'su').test(value.toLowerCase());
}

describe('glob: randomised cross-check', () => {
  // A tiny deterministic PRNG, so failures reproduce.
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pick = (alphabet: string[], max: number) => Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]).join('');
  const TEXT = ['a', 'b', 'A', '_', ' ', '-', '1', 'é', '😀'];
  const PATTERN = [...TEXT, '*', '?', '*', '?'];

  test('the NFA agrees with a regex reference, in both modes', () => {
    for (let k = 0; k < 4000; k++) {
      const pattern = pick(PATTERN, 5);
      const value = pick(TEXT, 8);
      for (const mode of ['whole', 'word'] as const) {
        const got = buildGlobMatcher(pattern, mode).test(value.toLowerCase());
        assert.equal(got, referenceMatch(pattern, value, mode), `${mode} ${JSON.stringify(pattern)} ~ ${JSON.stringify(value)}`);
      }
    }
  });

  test('requiredWord never rules out a real match', () => {
    for (let k = 0; k < 4000; k++) {
      const pattern = pick(PATTERN, 5);
      const value = pick(TEXT, 10).toLowerCase();
      for (const matcher of [buildGlobMatcher(pattern, 'word'), literalMatcher(pattern, 'word')]) {
        if (matcher.requiredWord !== undefined && matcher.test(value)) {
          assert.ok(wordsOf(value).has(matcher.requiredWord), `${JSON.stringify(pattern)} ~ ${JSON.stringify(value)}`);
        }
      }
    }
  });

  test('wordsOf and requiredWord', () => {
    assert.deepEqual([...wordsOf('hi, alice-bob_2!')], ['hi', 'alice', 'bob_2']);
    assert.deepEqual([...wordsOf('')], []);
    assert.equal(literalMatcher('User Number 7', 'word').requiredWord, 'user');
    assert.equal(literalMatcher('alice', 'word').requiredWord, 'alice');
    assert.equal(literalMatcher('@room', 'word').requiredWord, undefined);
    assert.equal(buildGlobMatcher('cake*', 'word').requiredWord, undefined);
    assert.equal(buildGlobMatcher('cake *', 'word').requiredWord, 'cake');
    assert.equal(buildGlobMatcher('lunch', 'whole').requiredWord, undefined);
  });
});
