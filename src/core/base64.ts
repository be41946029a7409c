// Unpadded base64 (spec appendices §Unpadded Base64), standard and URL-safe alphabets.
//
// Node's decoder silently skips characters outside the alphabet, so the strict decoders check the
// text first. Decisions:
// - A length of 1 mod 4 cannot come from any byte string and is refused.
// - Non-zero trailing bits are ACCEPTED: the spec's own test-vector seed
//   (`YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`) has them, as do keys from libraries that
//   accept them (Python's base64, Synapse's unpaddedbase64).
// - The strict decoders refuse `=` padding; the lenient one accepts it, and either alphabet.

export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

const STANDARD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;
const EITHER = /^[A-Za-z0-9+/_-]*$/;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Standard alphabet, no padding. */
export function encodeBase64(bytes: Uint8Array): string {
  const padded = asBuffer(bytes).toString('base64');
  let end = padded.length;
  while (end > 0 && padded.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return end === padded.length ? padded : padded.slice(0, end);
}

/** URL-safe alphabet (`-`, `_`), no padding. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64url'); // Node's base64url never pads
}

function checkLength(text: string): void {
  if (text.length % 4 === 1) throw new Base64Error('base64 text has an impossible length');
}

/** Strict unpadded standard base64. Throws `Base64Error`. */
export function decodeBase64(text: string): Buffer {
  if (typeof text !== 'string' || !STANDARD.test(text)) {
    throw new Base64Error('not unpadded standard base64');
  }
  checkLength(text);
  return Buffer.from(text, 'base64');
}

/** Strict unpadded URL-safe base64. Throws `Base64Error`. */
export function decodeBase64Url(text: string): Buffer {
  if (typeof text !== 'string' || !URL_SAFE.test(text)) {
    throw new Base64Error('not unpadded URL-safe base64');
  }
  checkLength(text);
  return Buffer.from(text, 'base64url');
}

/**
 * Either alphabet (even mixed), with or without correct `=` padding. For values that real
 * software writes both ways, such as 3PID invite `public_key`s. Throws `Base64Error`.
 */
export function decodeBase64Lenient(text: string): Buffer {
  if (typeof text !== 'string') throw new Base64Error('not base64');
  let body = text;
  const pad = body.indexOf('=');
  if (pad !== -1) {
    const padding = body.slice(pad);
    if ((padding !== '=' && padding !== '==') || body.length % 4 !== 0) {
      throw new Base64Error('bad base64 padding');
    }
    body = body.slice(0, pad);
  }
  if (!EITHER.test(body)) throw new Base64Error('not base64');
  checkLength(body);
  // Node's base64url decoder accepts both alphabets.
  return Buffer.from(body, 'base64url');
}

/** `decodeBase64`, or `undefined` instead of throwing. */
export function tryDecodeBase64(text: unknown): Buffer | undefined {
  if (typeof text !== 'string' || !STANDARD.test(text) || text.length % 4 === 1) return undefined;
  return Buffer.from(text, 'base64');
}
