// JSON value types shared by all of core/. Matrix events are JSON; keeping the type precise lets
// the compiler catch code that assumes a field is present or has a particular shape.

export type JsonPrimitive = null | boolean | number | string;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---- JSON from outside (request bodies, query parameters) ----

/**
 * How deeply JSON from a client may nest: far deeper than any real Matrix content (events, push
 * rules, filters, keys nest a handful of levels), and shallow enough that the recursive walks over
 * it (canonical JSON, hashing, redaction, comparison, serialisation) cannot exhaust the stack. With
 * the envelopes content travels in (a PDU, a replication call, a sync response) it stays within
 * the 128 levels that serde_json-based servers read by default.
 */
export const MAX_JSON_DEPTH = 100;

/** What is wrong with a JSON text: `syntax` is not JSON at all; the others are JSON we refuse. */
export type JsonInputProblem = 'syntax' | 'depth' | 'surrogate' | 'nul' | 'number';

export class JsonInputError extends Error {
  constructor(
    readonly problem: JsonInputProblem,
    message: string,
  ) {
    super(message);
    this.name = 'JsonInputError';
  }
}

export interface JsonInputOptions {
  /** Deepest nesting accepted (objects and arrays); default `MAX_JSON_DEPTH`. */
  readonly maxDepth?: number;
  /** Whether strings (and keys) may contain U+0000; default false. */
  readonly allowNul?: boolean;
}

/**
 * Parses JSON that came from outside, refusing what would fail later, and differently per
 * database or code path:
 * - nesting deeper than `maxDepth`, checked on the text before anything is built, so no recursive
 *   walk ever sees it;
 * - strings or keys with a lone UTF-16 surrogate (`"\ud800"` is valid JSON text but no Unicode
 *   string: UTF-8 cannot encode it, so it would be stored mangled);
 * - U+0000 in a string or key unless `allowNul` (PostgreSQL text columns cannot hold it);
 * - numbers beyond the double range (`1e400` would silently become `null`).
 */
export function parseJsonInput(text: string, options: JsonInputOptions = {}): JsonValue {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  if (nestsDeeperThan(text, maxDepth)) throw new JsonInputError('depth', `JSON nested deeper than ${maxDepth} levels`);
  if (!isWellFormed.call(text)) throw new JsonInputError('surrogate', LONE_SURROGATE_MESSAGE);
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    throw new JsonInputError('syntax', 'Content not JSON');
  }
  // In well-formed JSON text, a lone surrogate or a NUL can only come from a `\u` escape (raw
  // control characters are invalid in strings), and an infinite number only from a long literal:
  // values are looked at one by one only when the text has something of the kind.
  if (SUSPICIOUS_TEXT.test(text)) checkJsonValues(value, options.allowNul ?? false);
  return value;
}

/** `\u0000`, `\uD800`–`\uDFFF`, an exponent of 3+ digits, or 309+ digits in a row. */
const SUSPICIOUS_TEXT = /\\u(?:0000|[dD][89a-fA-F])|[eE][+-]?\d{3}|\d{309}/;
const LONE_SURROGATE_MESSAGE = 'Strings must be valid Unicode (a lone UTF-16 surrogate is not)';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Whether the containers in `text` nest deeper than `maxDepth`: one pass over the text, jumping
 * over strings. Only meaningful for valid JSON; the parse that follows rejects the rest.
 */
function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // The closing quote is the next one preceded by an even number of backslashes.
      for (;;) {
        const end = text.indexOf('"', i + 1);
        if (end < 0) return false;
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
        i = end;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

// `String.prototype.isWellFormed` (Node 20+) is ES2024; the project's `lib` is ES2023.
const isWellFormed = (String.prototype as unknown as { isWellFormed: (this: string) => boolean }).isWellFormed;

/** Recursion is safe here: the depth was bounded before parsing. */
function checkJsonValues(value: JsonValue, allowNul: boolean): void {
  if (typeof value === 'string') {
    checkString(value, allowNul);
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new JsonInputError('number', 'Number out of range');
  } else if (Array.isArray(value)) {
    for (const item of value) checkJsonValues(item, allowNul);
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      checkString(key, allowNul);
      checkJsonValues(value[key]!, allowNul);
    }
  }
}

function checkString(s: string, allowNul: boolean): void {
  if (!isWellFormed.call(s)) throw new JsonInputError('surrogate', LONE_SURROGATE_MESSAGE);
  if (!allowNul && s.includes('\u0000')) throw new JsonInputError('nul', 'Strings must not contain U+0000');
}
