// Canonical JSON (spec appendices §Canonical JSON): the byte form that is hashed and signed.
//
// - Object keys sorted by Unicode code point. `Array.prototype.sort` compares UTF-16 code units,
//   which puts astral characters (surrogate pairs, 0xD800–0xDFFF) before U+E000–U+FFFF; we use the
//   plain sort and only re-sort with a code-point comparator when a key holds a surrogate.
// - No insignificant whitespace. Strings are escaped exactly as `JSON.stringify` does (only `"`,
//   `\` and U+0000–001F, as `\b\t\n\f\r` or lowercase `\u00xx`), which is the spec's grammar.
//   A lone surrogate has no UTF-8 form, so it is refused.
// - Numbers are integers in ±(2^53−1) with no exponent; `-0` is written `0`.
//
// Room versions 1–5 do not enforce the number rules and their events can hold floats or big
// integers. `relaxed` encodes those as best it can so such events can still be hashed; exact
// legacy bytes can only come from the original wire bytes (JSON.parse has already rounded them).
//
// The encoders carry no path while encoding (that would allocate a string per value); when one
// fails, a slow walk finds where, for the error message.

/** A value that cannot be written as canonical JSON (float, out-of-range integer, non-JSON type). */
export class CanonicalJsonError extends Error {
  constructor(
    readonly reason: string,
    /** Where the bad value sits, e.g. `content.body[2]`; empty for the root. */
    readonly path: string = '',
  ) {
    super(path ? `${reason} at ${path}` : reason);
    this.name = 'CanonicalJsonError';
  }
}

export interface CanonicalJsonOptions {
  /**
   * Accept any finite number (room versions 1–5). Integers outside ±(2^53−1) are written with
   * all the digits of the double; non-integers as JavaScript formats them. Default `false`.
   */
  readonly relaxed?: boolean;
}

/**
 * Deeper nesting is refused rather than risking a stack overflow. Synapse's encoder (bounded by
 * Python's recursion limit of 1000) fails before this, so no event that exists nests this deep.
 */
export const CANONICAL_JSON_MAX_DEPTH = 1000;

const SURROGATE = /[\uD800-\uDFFF]/;

// `String.prototype.isWellFormed` (Node 20+) is ES2024; the project's `lib` is ES2023.
const nativeIsWellFormed = (String.prototype as unknown as { isWellFormed?: () => boolean }).isWellFormed;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed: (s: string) => boolean = nativeIsWellFormed ? (s) => nativeIsWellFormed.call(s) : (s) => !LONE_SURROGATE.test(s);

/**
 * Compares two strings by code point. In UTF-16, moving surrogates above U+E000–U+FFFF makes
 * code-unit order equal code-point order.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}

/** The own keys of `obj` in code-point order. */
export function sortedKeys(obj: object): string[] {
  const keys = Object.keys(obj);
  if (keys.length < 2) return keys;
  keys.sort();
  for (let i = 0; i < keys.length; i++) {
    if (SURROGATE.test(keys[i]!)) {
      keys.sort(compareCodePoints);
      break;
    }
  }
  return keys;
}

/** Thrown inside the fast encoders; `encodeCanonicalJson` replaces it with a located error. */
class Unencodable extends Error {}
const UNENCODABLE = new Unencodable();

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// Anything JSON.stringify would escape, plus surrogates (which need the well-formedness check).
// Most strings match none of these and are quoted by concatenation, which is several times
// cheaper than a JSON.stringify call.
// eslint-disable-next-line no-control-regex -- the control characters are what JSON escapes
const NEEDS_CARE = /["\\\u0000-\u001f\ud800-\udfff]/;

function quote(s: string): string {
  if (!NEEDS_CARE.test(s)) return '"' + s + '"';
  if (!wellFormed(s)) throw UNENCODABLE;
  return JSON.stringify(s);
}

// Object keys repeat across events (`type`, `content`, `m.relates_to`, ...): keep their quoted
// form. Only short keys without surrogates are kept. When the cache is full it is emptied, so
// hostile content full of unique keys cannot grow it, nor keep the common keys out for long.
const KEY_CACHE_LIMIT = 4096;
const KEY_CACHE_MAX_LENGTH = 64;
const quotedKeys = new Map<string, string>();

/** The quoted key, or `undefined` if the key holds a surrogate (so the plain sort may be wrong). */
function quoteKey(key: string): string | undefined {
  const cached = quotedKeys.get(key);
  if (cached !== undefined) return cached;
  if (SURROGATE.test(key)) return undefined;
  const quoted = quote(key);
  if (key.length <= KEY_CACHE_MAX_LENGTH) {
    if (quotedKeys.size >= KEY_CACHE_LIMIT) quotedKeys.clear();
    quotedKeys.set(key, quoted);
  }
  return quoted;
}

/**
 * Sorts keys by UTF-16 code unit, which is code-point order as long as no key holds a surrogate
 * (`quoteKey` tells). Objects in events are small, where insertion sort beats `Array.sort`.
 */
function sortKeysByCodeUnit(keys: string[]): void {
  const n = keys.length;
  if (n > 12) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
}

function encodeStrict(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      // String(-0) is "0"; safe integers never print with an exponent.
      if (Number.isSafeInteger(value)) return String(value);
      throw UNENCODABLE;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= CANONICAL_JSON_MAX_DEPTH) throw UNENCODABLE;
      if (Array.isArray(value)) {
        const n = value.length;
        if (n === 0) return '[]';
        let out = '[' + encodeStrict(value[0], depth + 1);
        for (let i = 1; i < n; i++) out += ',' + encodeStrict(value[i], depth + 1);
        return out + ']';
      }
      return encodeObjectStrict(value, depth, undefined);
    }
    default:
      throw UNENCODABLE;
  }
}

function encodeObjectStrict(value: object, depth: number, omit: ReadonlySet<string> | undefined): string {
  if (!isPlainObject(value)) throw UNENCODABLE;
  const keys = Object.keys(value);
  sortKeysByCodeUnit(keys);
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (omit !== undefined && omit.has(key)) continue;
    const quoted = quoteKey(key);
    if (quoted === undefined) return encodeObjectSlowly(value, depth, omit, false);
    if (first) first = false;
    else out += ',';
    out += quoted + ':' + encodeStrict(record[key], depth + 1);
  }
  return out + '}';
}

/** Objects with a surrogate in some key: sort by code point. */
function encodeObjectSlowly(value: object, depth: number, omit: ReadonlySet<string> | undefined, relaxed: boolean): string {
  const keys = Object.keys(value).sort(compareCodePoints);
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const key of keys) {
    if (omit !== undefined && omit.has(key)) continue;
    if (first) first = false;
    else out += ',';
    const child = relaxed ? encodeRelaxed(record[key], depth + 1) : encodeStrict(record[key], depth + 1);
    out += quote(key) + ':' + child;
  }
  return out + '}';
}

function encodeNumberRelaxed(n: number): string {
  if (!Number.isFinite(n)) throw UNENCODABLE;
  if (Number.isInteger(n)) {
    // From 1e21 `String` switches to exponent form; BigInt prints every digit of the double.
    return Math.abs(n) < 1e21 ? String(n) : BigInt(n).toString();
  }
  return String(n);
}

function encodeRelaxed(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return encodeNumberRelaxed(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= CANONICAL_JSON_MAX_DEPTH) throw UNENCODABLE;
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          out += encodeRelaxed(value[i], depth + 1);
        }
        return out + ']';
      }
      return encodeObjectRelaxed(value, depth, undefined);
    }
    default:
      throw UNENCODABLE;
  }
}

function encodeObjectRelaxed(value: object, depth: number, omit: ReadonlySet<string> | undefined): string {
  if (!isPlainObject(value)) throw UNENCODABLE;
  const keys = Object.keys(value);
  sortKeysByCodeUnit(keys);
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const key of keys) {
    if (omit !== undefined && omit.has(key)) continue;
    const quoted = quoteKey(key);
    if (quoted === undefined) return encodeObjectSlowly(value, depth, omit, true);
    if (first) first = false;
    else out += ',';
    out += quoted + ':' + encodeRelaxed(record[key], depth + 1);
  }
  return out + '}';
}

// ---- locating a failure (slow path, only after a fast encoder gave up) ----

function describe(value: unknown, relaxed: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
      return wellFormed(value) ? undefined : 'string holds a lone surrogate';
    case 'number':
      if (!Number.isFinite(value)) return `${value} is not a JSON number`;
      if (relaxed) return undefined;
      if (!Number.isInteger(value)) return `${value} is not an integer`;
      if (!Number.isSafeInteger(value)) return `integer ${value} is outside ±(2^53−1)`;
      return undefined;
    case 'boolean':
      return undefined;
    case 'object':
      if (value === null || Array.isArray(value)) return undefined;
      if (isPlainObject(value)) return undefined;
      return `${value.constructor?.name ?? 'object'} is not a JSON value`;
    default:
      return `${typeof value} is not a JSON value`;
  }
}

function locate(
  value: unknown,
  path: string,
  depth: number,
  relaxed: boolean,
  omit: ReadonlySet<string> | undefined,
): CanonicalJsonError | undefined {
  const problem = describe(value, relaxed);
  if (problem) return new CanonicalJsonError(problem, path);
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth >= CANONICAL_JSON_MAX_DEPTH) return new CanonicalJsonError('nested too deeply', path);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = locate(value[i], `${path}[${i}]`, depth + 1, relaxed, undefined);
      if (found) return found;
    }
    return undefined;
  }
  const record = value as Record<string, unknown>;
  for (const key of sortedKeys(value)) {
    if (omit?.has(key)) continue;
    const at = path ? `${path}.${key}` : key;
    if (!wellFormed(key)) return new CanonicalJsonError('key holds a lone surrogate', at);
    const found = locate(record[key], at, depth + 1, relaxed, undefined);
    if (found) return found;
  }
  return undefined;
}

function located(err: unknown, value: unknown, relaxed: boolean, omit?: ReadonlySet<string>): unknown {
  if (err === UNENCODABLE) {
    return locate(value, '', 0, relaxed, omit) ?? new CanonicalJsonError('value is not encodable');
  }
  if (err instanceof RangeError) {
    // A structure so wide-and-deep (or cyclic through arrays) that the stack ran out.
    return new CanonicalJsonError(`cannot encode: ${err.message}`);
  }
  return err;
}

/**
 * `value` as canonical JSON text. Hash or sign its UTF-8 bytes (`encodeCanonicalJsonBytes`).
 * Throws `CanonicalJsonError` for anything canonical JSON cannot hold.
 */
export function encodeCanonicalJson(value: unknown, options?: CanonicalJsonOptions): string {
  const relaxed = options?.relaxed === true;
  try {
    return relaxed ? encodeRelaxed(value, 0) : encodeStrict(value, 0);
  } catch (err) {
    throw located(err, value, relaxed);
  }
}

/** `encodeCanonicalJson` as UTF-8 bytes. */
export function encodeCanonicalJsonBytes(value: unknown, options?: CanonicalJsonOptions): Buffer {
  return Buffer.from(encodeCanonicalJson(value, options), 'utf8');
}

/**
 * Encodes a JSON object as if its top-level keys in `omit` were absent, without copying it. This
 * is how hashes and signatures leave out `signatures`, `unsigned` and friends.
 */
export function encodeCanonicalJsonWithout(object: object, omit: ReadonlySet<string>, options?: CanonicalJsonOptions): string {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) {
    throw new CanonicalJsonError('expected a JSON object');
  }
  const relaxed = options?.relaxed === true;
  try {
    return relaxed ? encodeObjectRelaxed(object, 0, omit) : encodeObjectStrict(object, 0, omit);
  } catch (err) {
    throw located(err, object, relaxed, omit);
  }
}

// ---- checking parsed values (room versions 6+) ----

function checkStrict(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isSafeInteger(value);
    case 'object': {
      if (value === null) return true;
      if (depth >= CANONICAL_JSON_MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!checkStrict(value[i], depth + 1)) return false;
        return true;
      }
      if (!isPlainObject(value)) return false;
      const record = value as Record<string, unknown>;
      for (const key in record) if (!checkStrict(record[key], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/**
 * Why `value` (typically straight from `JSON.parse`) breaks the number rules of strict canonical
 * JSON that room versions 6+ enforce (integers in ±(2^53−1), no floats, only JSON types), or
 * `undefined` if it keeps them. Strings are not checked here (lone surrogates fail at encoding).
 *
 * JSON.parse reads `1.0` as the integer 1, so a float written with a zero fraction slips through;
 * only the raw text shows it.
 */
export function checkCanonicalJsonValues(value: unknown): string | undefined {
  let ok: boolean;
  try {
    ok = checkStrict(value, 0);
  } catch (err) {
    if (err instanceof RangeError) return `cannot check: ${err.message}`;
    throw err;
  }
  if (ok) return undefined;
  return (locateNumbers(value, '', 0) ?? new CanonicalJsonError('value is not canonical')).message;
}

function locateNumbers(value: unknown, path: string, depth: number): CanonicalJsonError | undefined {
  if (typeof value === 'string') return undefined;
  const problem = describe(value, false);
  if (problem) return new CanonicalJsonError(problem, path);
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth >= CANONICAL_JSON_MAX_DEPTH) return new CanonicalJsonError('nested too deeply', path);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = locateNumbers(value[i], `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  const record = value as Record<string, unknown>;
  for (const key of sortedKeys(value)) {
    const found = locateNumbers(record[key], path ? `${path}.${key}` : key, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Whether `value` holds only JSON values that strict canonical JSON allows. */
export function isCanonicalJsonValue(value: unknown): boolean {
  return checkCanonicalJsonValues(value) === undefined;
}
