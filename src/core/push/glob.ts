// Glob matching for push rules (`S:content/appendices.md` §Glob-style matching): `*` matches any
// run of characters (possibly empty), `?` exactly one character, everything else itself.
//
// Two modes:
//   - `whole`: the pattern must match the entire value (`event_match` on any key but `content.body`);
//   - `word`: the pattern must match some substring that starts and ends at a word boundary
//     (`event_match` on `content.body`, content rules, `contains_display_name`).
//
// Word boundaries follow the spec literally: a boundary is the start or end of the value or any
// character outside `[A-Za-z0-9_]`. A match may not cut a word in two: it may start at position p
// only if p is 0, or the character before p is a boundary character, or the character at p is one
// (so `@room` is found in `x@room`, as Synapse finds it). Likewise at the end. Synapse's regexes use
// Unicode word characters instead, so for text where a non-ASCII letter touches the match
// (`ana` in `anaïs`) the two differ; we keep the spec's definition.
//
// Case-insensitivity is done by lower-casing both sides (`String.prototype.toLowerCase`, which is
// Unicode-aware); callers pass haystacks already lower-cased so an event's body is lower-cased
// once, not once per user.
//
// No RegExp is built from a pattern: patterns are user-controlled and V8's backtracking engine is
// exponential on inputs such as `*a*a*a*b` against a long body. Literal patterns (the common case:
// display names, localparts, `@room`, event types) use string search; patterns with wildcards run a
// small NFA over the code points of the value, which is O(value × pattern) whatever the input.

export type GlobMode = 'whole' | 'word';

/** A compiled glob; `test` takes an already lower-cased haystack. */
export interface GlobMatcher {
  readonly pattern: string;
  readonly mode: GlobMode;
  /**
   * Word mode: a word (lower-cased) that any matching haystack contains as a whole word, or
   * `undefined`. Lets a caller holding the haystack's word set (`wordsOf`) rule most haystacks out
   * without scanning them: with a thousand users' display names to look for in one body, that is
   * the difference between a thousand scans and a thousand set lookups.
   */
  readonly requiredWord: string | undefined;
  test(lowerHaystack: string): boolean;
}

/** The distinct words (maximal `[a-z0-9_]` runs) of a lower-cased string. */
export function wordsOf(lower: string): Set<string> {
  const words = new Set<string>();
  let start = -1;
  for (let i = 0; i <= lower.length; i++) {
    const word = i < lower.length && isWordCodeUnit(lower.charCodeAt(i));
    if (word && start === -1) start = i;
    else if (!word && start !== -1) {
      words.add(lower.slice(start, i));
      start = -1;
    }
  }
  return words;
}

/**
 * For a lower-cased word-mode pattern: its leading word if every match must contain it as a whole
 * word. That holds when the pattern starts with a word character (so a match starts where a
 * haystack word starts) and the leading run of word characters is followed by a character that is
 * neither a word character nor a wildcard, or by the end of the pattern (so the match's word ends
 * exactly there).
 */
function leadingWord(lowerPattern: string): string | undefined {
  let i = 0;
  while (i < lowerPattern.length && isWordCodeUnit(lowerPattern.charCodeAt(i))) i++;
  if (i === 0) return undefined;
  if (i < lowerPattern.length) {
    const next = lowerPattern[i];
    if (next === '*' || next === '?') return undefined;
  }
  return lowerPattern.slice(0, i);
}

/** One step of a compiled wildcard pattern. */
const enum Tok {
  Any = -1, // `?`
  Star = -2, // `*`
}

/** `[A-Za-z0-9_]`, by UTF-16 code unit (all such characters are single units). */
export function isWordCodeUnit(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f // _
  );
}

/**
 * Whether position `i` of `s` (0 ≤ i ≤ s.length) is a place a word-mode match may start or end:
 * it does not fall between two word characters.
 */
function atBoundary(s: string, i: number): boolean {
  if (i === 0 || i === s.length) return true;
  return !isWordCodeUnit(s.charCodeAt(i - 1)) || !isWordCodeUnit(s.charCodeAt(i));
}

function hasWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/**
 * Tokenises a lower-cased pattern into code points, `Any` and `Star`. Runs of wildcards are
 * normalised to their `?`s followed by at most one `*` (`*?*` ≡ `?*`), so two `Star`s are never
 * adjacent.
 */
function tokenise(lowerPattern: string): number[] {
  const tokens: number[] = [];
  let anys = 0;
  let star = false;
  const flush = () => {
    for (let k = 0; k < anys; k++) tokens.push(Tok.Any);
    if (star) tokens.push(Tok.Star);
    anys = 0;
    star = false;
  };
  for (const ch of lowerPattern) {
    if (ch === '*') star = true;
    else if (ch === '?') anys++;
    else {
      flush();
      tokens.push(ch.codePointAt(0)!);
    }
  }
  flush();
  return tokens;
}

/**
 * NFA over the tokens. State `i` means "the first i tokens are matched"; `tokens.length` accepts.
 * `Star` at i can consume a character (stay at i) or be skipped (i → i+1, an ε-move).
 */
class WildcardMatcher implements GlobMatcher {
  readonly requiredWord: string | undefined;
  private readonly tokens: number[];
  private readonly n: number;
  // Scratch state sets, reused across calls (matching is synchronous).
  private cur: Uint8Array;
  private next: Uint8Array;

  constructor(
    readonly pattern: string,
    readonly mode: GlobMode,
  ) {
    this.tokens = tokenise(pattern.toLowerCase());
    this.requiredWord = mode === 'word' ? leadingWord(pattern.toLowerCase()) : undefined;
    this.n = this.tokens.length;
    this.cur = new Uint8Array(this.n + 1);
    this.next = new Uint8Array(this.n + 1);
  }

  /** Adds state `i` and its ε-closure (skipping a `Star`) to `set`. */
  private add(set: Uint8Array, i: number): void {
    set[i] = 1;
    // Stars are never adjacent, so one skip is the whole closure.
    if (i < this.n && this.tokens[i] === Tok.Star) set[i + 1] = 1;
  }

  test(s: string): boolean {
    const { tokens, n } = this;
    const word = this.mode === 'word';
    let cur = this.cur;
    let next = this.next;
    cur.fill(0);
    let live = false;
    for (let i = 0; ;) {
      // A match begins at the start (whole mode) or at any boundary (word mode).
      if (i === 0 || (word && atBoundary(s, i))) {
        this.add(cur, 0);
        live = true;
      }
      if (cur[n] === 1 && (word ? atBoundary(s, i) : i === s.length)) return true;
      if (i >= s.length || (!live && !word)) return false;
      const cp = s.codePointAt(i)!;
      next.fill(0);
      live = false;
      for (let st = 0; st < n; st++) {
        if (cur[st] !== 1) continue;
        const t = tokens[st]!;
        if (t === Tok.Star) {
          this.add(next, st); // the star consumes the character and stays
          live = true;
        } else if (t === Tok.Any || t === cp) {
          this.add(next, st + 1);
          live = true;
        }
      }
      i += cp > 0xffff ? 2 : 1;
      const swap = cur;
      cur = next;
      next = swap;
    }
  }
}

class LiteralWholeMatcher implements GlobMatcher {
  readonly mode = 'whole' as const;
  readonly requiredWord = undefined;
  private readonly lower: string;
  constructor(readonly pattern: string) {
    this.lower = pattern.toLowerCase();
  }
  test(s: string): boolean {
    return s === this.lower;
  }
}

class LiteralWordMatcher implements GlobMatcher {
  readonly mode = 'word' as const;
  readonly requiredWord: string | undefined;
  private readonly lower: string;
  constructor(readonly pattern: string) {
    this.lower = pattern.toLowerCase();
    // A literal `*`/`?` is an ordinary non-word character here, so the wildcard exclusion in
    // leadingWord only makes this more conservative.
    this.requiredWord = leadingWord(this.lower);
  }
  test(s: string): boolean {
    const needle = this.lower;
    let at = s.indexOf(needle);
    while (at !== -1) {
      if (atBoundary(s, at) && atBoundary(s, at + needle.length)) return true;
      at = s.indexOf(needle, at + 1);
    }
    return false;
  }
}

/** Builds a matcher without caching. */
export function buildGlobMatcher(pattern: string, mode: GlobMode): GlobMatcher {
  if (hasWildcard(pattern)) return new WildcardMatcher(pattern, mode);
  return mode === 'whole' ? new LiteralWholeMatcher(pattern) : new LiteralWordMatcher(pattern);
}

// Compiled matchers by mode and pattern. Default rules use a handful of patterns, but display
// names and localparts add one per user, so the cache is bounded: when full it is dropped and
// refilled, which keeps the common patterns hot without tracking recency.
const MAX_CACHED = 20_000;
const cache = new Map<string, GlobMatcher>();

/** A matcher for `pattern`, from a process-wide cache. */
export function globMatcher(pattern: string, mode: GlobMode): GlobMatcher {
  const key = (mode === 'whole' ? 'w:' : 'b:') + pattern;
  let matcher = cache.get(key);
  if (matcher === undefined) {
    if (cache.size >= MAX_CACHED) cache.clear();
    matcher = buildGlobMatcher(pattern, mode);
    cache.set(key, matcher);
  }
  return matcher;
}

/** Convenience: case-insensitive glob match of `value` (lower-cases it). */
export function globMatches(pattern: string, value: string, mode: GlobMode = 'whole'): boolean {
  return globMatcher(pattern, mode).test(value.toLowerCase());
}

/**
 * A matcher for `text` taken literally (`*` and `?` are themselves), for `contains_display_name`:
 * a display name is not a pattern. (Synapse treats it as a glob, so a display name of `?` matches
 * every one-letter word; we don't.)
 */
export function literalMatcher(text: string, mode: GlobMode): GlobMatcher {
  if (mode === 'whole') return new LiteralWholeMatcher(text);
  // Looked up once per user per event, so keyed by the text itself (no key to build).
  let matcher = literalWordCache.get(text);
  if (matcher === undefined) {
    if (literalWordCache.size >= MAX_CACHED) literalWordCache.clear();
    matcher = new LiteralWordMatcher(text);
    literalWordCache.set(text, matcher);
  }
  return matcher;
}

const literalWordCache = new Map<string, GlobMatcher>();
