// Request authentication between servers: the `X-Matrix` Authorization header (spec:
// server-server API §Request Authentication).
//
// The signed object is `{method, uri, origin, destination, content?}`, signed with the JSON
// signing algorithm; the signature travels in the header:
//
//     Authorization: X-Matrix origin="a.example",destination="b.example",key="ed25519:k",sig="..."
//
// Sending, we write exactly that form (one space after `X-Matrix`, lower-case names, quoted
// values, no whitespace around commas), which older servers need. Receiving, we accept what RFC
// 9110 §11.4 allows (case-insensitive scheme and names, any order, quoted or bare values,
// backslash escapes, spaces and tabs around commas, empty list elements), plus colons in bare
// values (the spec's compatibility rule) and other visible characters (so a bare base64 `sig`
// with `/`, `+` and `=` works). Unknown parameters are ignored; `destination` is optional on
// receipt. The spec's parameter list says `signature`, but its example, Synapse and every
// implementation use `sig`, so that is the name read and written.

import { isValidServerName } from './identifiers.js';
import type { JsonObject, JsonValue } from './json.js';
import type { ServerVerifyKey } from './server-keys.js';
import { isKeyUsableForRequest } from './server-keys.js';
import type { SigningKey } from './signing.js';
import { signJson, verifyJsonSignature } from './signing.js';

export const X_MATRIX_SCHEME = 'X-Matrix';

export interface XMatrixCredentials {
  /** The requesting server's name (before any delegation). */
  readonly origin: string;
  /** Our server name as the requester wrote it; absent from servers older than spec v1.3. */
  readonly destination: string | undefined;
  /** `ed25519:<version>` of the key that signed the request. */
  readonly keyId: string;
  /** Unpadded base64 signature. */
  readonly signature: string;
}

export type XMatrixParseErrorCode =
  /** No header, or an Authorization header of another scheme. */
  | 'missing'
  /** Not the RFC 9110 credentials syntax. */
  | 'malformed'
  /** A parameter given twice (RFC 9110: each name MUST occur once); which one counts is ambiguous. */
  | 'duplicate-param'
  /** `origin`, `key` or `sig` missing or empty. */
  | 'missing-param'
  | 'invalid-origin'
  | 'invalid-key-id';

export interface XMatrixParseError {
  readonly code: XMatrixParseErrorCode;
  readonly message: string;
}

export type XMatrixParseResult =
  { readonly ok: true; readonly credentials: XMatrixCredentials } | { readonly ok: false; readonly error: XMatrixParseError };

// RFC 9110 §5.6.2 tchar
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
const isTchar = (c: string) => TCHAR.test(c);
const isWhitespace = (c: string | undefined) => c === ' ' || c === '\t';
/** Visible ASCII and obs-text (%x80-FF): what a bare value may hold, bar `"` and `,`. */
const isBareValueChar = (c: string) => {
  const code = c.charCodeAt(0);
  return ((code >= 0x21 && code <= 0x7e) || (code >= 0x80 && code <= 0xff)) && c !== '"' && c !== ',';
};
/** qdtext or the character after a backslash: HTAB, SP, VCHAR, obs-text. */
const isQuotedChar = (c: string) => {
  const code = c.charCodeAt(0);
  return code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);
};

function parseError(code: XMatrixParseErrorCode, message: string): { ok: false; error: XMatrixParseError } {
  return { ok: false, error: { code, message } };
}

/**
 * Reads the auth-params of an RFC 9110 credentials value with the given scheme. Returns the
 * parameters (names lower-cased) or an error; never throws.
 */
function parseAuthParams(header: string, scheme: string): Map<string, string> | XMatrixParseError {
  let i = 0;
  const n = header.length;
  while (i < n && isTchar(header[i]!)) i++;
  if (header.slice(0, i).toLowerCase() !== scheme.toLowerCase()) {
    return { code: 'missing', message: `not an ${scheme} Authorization header` };
  }
  if (i < n && !isWhitespace(header[i])) return { code: 'missing', message: `not an ${scheme} Authorization header` };
  while (i < n && isWhitespace(header[i])) i++;

  const params = new Map<string, string>();
  for (;;) {
    // Empty list elements and whitespace around commas (RFC 9110 §5.6.1).
    while (i < n && (isWhitespace(header[i]) || header[i] === ',')) i++;
    if (i >= n) break;

    const nameStart = i;
    while (i < n && isTchar(header[i]!)) i++;
    if (i === nameStart) return { code: 'malformed', message: `unexpected ${JSON.stringify(header[i])} at ${i}` };
    const name = header.slice(nameStart, i).toLowerCase();
    while (i < n && isWhitespace(header[i])) i++;
    if (header[i] !== '=') return { code: 'malformed', message: `parameter ${name} has no "="` };
    i++;
    while (i < n && isWhitespace(header[i])) i++;

    let value = '';
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = header[i]!;
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\\') {
          const next = header[i + 1];
          if (next === undefined || !isQuotedChar(next)) return { code: 'malformed', message: `bad escape in ${name}` };
          value += next;
          i += 2;
          continue;
        }
        if (!isQuotedChar(c)) return { code: 'malformed', message: `control character in ${name}` };
        value += c;
        i++;
      }
      if (!closed) return { code: 'malformed', message: `unterminated quoted value of ${name}` };
    } else {
      const valueStart = i;
      while (i < n && isBareValueChar(header[i]!)) i++;
      value = header.slice(valueStart, i);
      if (value === '') return { code: 'malformed', message: `parameter ${name} has no value` };
    }

    if (params.has(name)) return { code: 'duplicate-param', message: `parameter ${name} is given twice` };
    params.set(name, value);

    while (i < n && isWhitespace(header[i])) i++;
    if (i < n && header[i] !== ',') return { code: 'malformed', message: `expected "," after ${name}` };
  }
  return params;
}

/** `<algorithm>:<version>`, both parts non-empty (the algorithm a token, as in key ids). */
const KEY_ID = /^[A-Za-z0-9_]+:[^\s:]+$/;

/**
 * Parses an `Authorization` header value as X-Matrix credentials. `origin` must be a valid server
 * name and `key` a key id; `destination` is returned as given (compare it with
 * `checkXMatrixDestination`). Other parameters are ignored. Never throws.
 */
export function parseXMatrixAuthorization(header: string | undefined): XMatrixParseResult {
  if (typeof header !== 'string' || header === '') return parseError('missing', 'no Authorization header');
  const params = parseAuthParams(header, X_MATRIX_SCHEME);
  if (!(params instanceof Map)) return { ok: false, error: params };
  const origin = params.get('origin');
  const keyId = params.get('key');
  const signature = params.get('sig');
  for (const [name, value] of [
    ['origin', origin],
    ['key', keyId],
    ['sig', signature],
  ] as const) {
    if (value === undefined || value === '') return parseError('missing-param', `the ${name} parameter is missing`);
  }
  if (!isValidServerName(origin!)) return parseError('invalid-origin', `origin ${JSON.stringify(origin)} is not a server name`);
  if (!KEY_ID.test(keyId!)) return parseError('invalid-key-id', `key ${JSON.stringify(keyId)} is not a key id`);
  return { ok: true, credentials: { origin: origin!, destination: params.get('destination'), keyId: keyId!, signature: signature! } };
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * The header value in the form the spec asks senders to use: one space after `X-Matrix`,
 * lower-case names, no whitespace around commas, quoted values (escaped if they ever held `"` or
 * `\`, which server names, key ids and base64 never do).
 */
export function formatXMatrixAuthorization(credentials: XMatrixCredentials): string {
  const params = [`origin=${quote(credentials.origin)}`];
  if (credentials.destination !== undefined) params.push(`destination=${quote(credentials.destination)}`);
  params.push(`key=${quote(credentials.keyId)}`, `sig=${quote(credentials.signature)}`);
  return `${X_MATRIX_SCHEME} ${params.join(',')}`;
}

// ---- the signed request ----

export interface FederationRequest {
  /** The HTTP method as sent, e.g. `PUT`. */
  readonly method: string;
  /**
   * The request target exactly as sent: the path from `/_matrix/...` with `?` and the query if
   * any, percent-encoding and all; no scheme or host. The receiver checks the raw target it got,
   * so any re-encoding between signing and sending breaks the signature.
   */
  readonly uri: string;
  /** The requesting server's name. */
  readonly origin: string;
  /** The receiving server's name (both before delegation). */
  readonly destination: string;
  /** The parsed JSON body, only when the request has one (`undefined` for a GET). */
  readonly content?: JsonValue;
}

/** The JSON object the request signature covers. */
export function requestSigningObject(request: FederationRequest): JsonObject {
  const object: JsonObject = {
    method: request.method,
    uri: request.uri,
    origin: request.origin,
    destination: request.destination,
  };
  if (request.content !== undefined) object.content = request.content;
  return object;
}

/**
 * Signs an outgoing request with our key and returns the `Authorization` header value. Throws
 * `CanonicalJsonError` if `content` cannot be canonical JSON (a bug in the caller).
 */
export function signRequest(request: FederationRequest, key: SigningKey): string {
  const signed = signJson(requestSigningObject(request), request.origin, key);
  const signature = ((signed.signatures as JsonObject)[request.origin] as JsonObject)[key.keyId] as string;
  return formatXMatrixAuthorization({ origin: request.origin, destination: request.destination, keyId: key.keyId, signature });
}

/**
 * Whether `signature` by `keyId` of `request.origin` signs `request`, checked with `publicKey`.
 * Any malformation is `false`, never an exception.
 */
export function verifyRequestSignature(
  request: FederationRequest,
  keyId: string,
  signature: string,
  publicKey: Uint8Array | string,
): boolean {
  const object = requestSigningObject(request);
  object.signatures = { [request.origin]: { [keyId]: signature } };
  return verifyJsonSignature(object, request.origin, keyId, publicKey);
}

// ---- authenticating an inbound request ----

/** Why an inbound request is not authenticated, with the answer to give. */
export interface RequestAuthFailure {
  readonly status: 401;
  readonly errcode: 'M_UNAUTHORIZED';
  readonly reason: XMatrixParseErrorCode | 'wrong-destination' | 'unknown-key' | 'key-not-valid-now' | 'bad-signature';
  readonly message: string;
}

function unauthorized(reason: RequestAuthFailure['reason'], message: string): RequestAuthFailure {
  return { status: 401, errcode: 'M_UNAUTHORIZED', reason, message };
}

export type HeaderCheckResult =
  { readonly ok: true; readonly credentials: XMatrixCredentials } | { readonly ok: false; readonly failure: RequestAuthFailure };

/**
 * First half of authenticating a request: read the header and check it is meant for us. A
 * `destination` that is present and is not our name must be refused with 401 (the spec); a
 * missing one is accepted for older servers. Every failure is 401 `M_UNAUTHORIZED` (Synapse
 * answers an unparseable header with 400, but the request is simply not authenticated). The
 * caller then fetches the origin's key `credentials.keyId` and calls `verifyXMatrixRequest`.
 */
export function readXMatrixHeader(header: string | undefined, ourServerName: string): HeaderCheckResult {
  const parsed = parseXMatrixAuthorization(header);
  if (!parsed.ok) return { ok: false, failure: unauthorized(parsed.error.code, parsed.error.message) };
  const { destination } = parsed.credentials;
  if (destination !== undefined && destination !== ourServerName) {
    return {
      ok: false,
      failure: unauthorized('wrong-destination', `the request is for ${JSON.stringify(destination)}, not this server`),
    };
  }
  return { ok: true, credentials: parsed.credentials };
}

export interface InboundRequest {
  readonly method: string;
  /** The raw request target as received (path and query). */
  readonly uri: string;
  /** The parsed JSON body, or `undefined` when the request has none. */
  readonly content?: JsonValue;
}

/**
 * Second half: checks the signature against `key`, the origin's key with the header's key id
 * (`undefined` if it could not be found). The key must be a current key valid at `now`; old keys
 * never sign requests. The signed object uses our own name as `destination` whatever the header
 * said, so a request signed for another server never verifies. Returns the authenticated origin.
 */
export function verifyXMatrixRequest(
  credentials: XMatrixCredentials,
  request: InboundRequest,
  ourServerName: string,
  key: ServerVerifyKey | undefined,
  now: number,
): { readonly ok: true; readonly origin: string } | { readonly ok: false; readonly failure: RequestAuthFailure } {
  const { origin, keyId, signature } = credentials;
  if (!key || key.serverName !== origin || key.keyId !== keyId) {
    return { ok: false, failure: unauthorized('unknown-key', `no key ${keyId} of ${origin} could be found`) };
  }
  if (!isKeyUsableForRequest(key, now)) {
    return { ok: false, failure: unauthorized('key-not-valid-now', `key ${keyId} of ${origin} is not valid now`) };
  }
  const signed: FederationRequest = {
    method: request.method,
    uri: request.uri,
    origin,
    destination: ourServerName,
    content: request.content,
  };
  if (!verifyRequestSignature(signed, keyId, signature, key.publicKey)) {
    return { ok: false, failure: unauthorized('bad-signature', `the request signature of ${origin} does not verify`) };
  }
  return { ok: true, origin };
}
