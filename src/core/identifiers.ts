// Identifier grammar (spec appendices §Identifier Grammar): server names, user ids, room ids,
// event ids, room aliases.
//
// Two strictness levels for user ids. Events from other servers must be accepted with the
// historical grammar (any non-surrogate code points except `:` and NUL in the localpart, even
// empty); new registrations use the current grammar `[a-z0-9._=\-/+]+`.

import { isIPv6 } from 'node:net';
import type { EventIdFormat, RoomVersion } from './room-versions.js';

/** Every identifier, sigil and server name included, is at most this many UTF-8 bytes. */
export const MAX_IDENTIFIER_BYTES = 255;

export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// ---- server names ----

export interface ServerName {
  /** A DNS name, dotted-quad IPv4, or bracketed IPv6 literal (brackets kept). */
  readonly host: string;
  readonly port: number | undefined;
}

const DNS_NAME = /^[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const PORT = /^[0-9]{1,5}$/;

/**
 * Splits and checks a server name: `hostname [":" port]`, the hostname a DNS name, IPv4 literal or
 * `[IPv6]` literal; port 1–5 digits. Like Synapse, DNS labels must be non-empty (no leading,
 * trailing or doubled dots). `undefined` if invalid.
 */
export function parseServerName(serverName: string): ServerName | undefined {
  if (typeof serverName !== 'string' || serverName.length === 0 || serverName.length > MAX_IDENTIFIER_BYTES) {
    return undefined;
  }
  let host: string;
  let portText: string | undefined;
  if (serverName.startsWith('[')) {
    const close = serverName.indexOf(']');
    if (close === -1) return undefined;
    host = serverName.slice(0, close + 1);
    const rest = serverName.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
    const literal = host.slice(1, -1);
    if (!IPV6_CHARS.test(literal) || !isIPv6(literal)) return undefined;
  } else {
    const colon = serverName.indexOf(':');
    if (colon === -1) host = serverName;
    else {
      host = serverName.slice(0, colon);
      portText = serverName.slice(colon + 1);
    }
    if (!DNS_NAME.test(host)) return undefined;
  }
  if (portText !== undefined && !PORT.test(portText)) return undefined;
  return { host, port: portText === undefined ? undefined : Number(portText) };
}

export function isValidServerName(serverName: string): boolean {
  return parseServerName(serverName) !== undefined;
}

// ---- the common `&localpart:domain` shape ----

// `String.prototype.isWellFormed` (Node 20+) is ES2024; the project's `lib` is ES2023.
const nativeIsWellFormed = (String.prototype as unknown as { isWellFormed?: () => boolean }).isWellFormed;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
function wellFormed(s: string): boolean {
  return nativeIsWellFormed ? nativeIsWellFormed.call(s) : !LONE_SURROGATE.test(s);
}

/** A localpart under the historical grammar: no `:`, no NUL, no lone surrogate; may be empty. */
export function isHistoricalLocalpart(localpart: string): boolean {
  return !localpart.includes(':') && !localpart.includes('\u0000') && wellFormed(localpart);
}

interface Sigilled {
  readonly localpart: string;
  readonly serverName: string;
}

/** Options shared by the identifier parsers. */
export interface LengthOptions {
  /**
   * Skip the 255-byte limit. The event format applies its own limit instead, which before room
   * version 11 counts code points rather than bytes.
   */
  readonly skipLengthCheck?: boolean;
}

function parseSigilled(id: unknown, sigil: string, options?: LengthOptions): Sigilled | undefined {
  if (typeof id !== 'string' || id[0] !== sigil) return undefined;
  if (!options?.skipLengthCheck && (id.length > MAX_IDENTIFIER_BYTES || utf8Length(id) > MAX_IDENTIFIER_BYTES)) {
    return undefined;
  }
  const colon = id.indexOf(':');
  if (colon === -1) return undefined;
  const localpart = id.slice(1, colon);
  const serverName = id.slice(colon + 1);
  if (!isHistoricalLocalpart(localpart) || !isValidServerName(serverName)) return undefined;
  return { localpart, serverName };
}

/**
 * The server name of a `&localpart:domain` identifier (user id, room alias, v1–11 room id, v1/v2
 * event id): everything after the first `:`. `undefined` if there is no `:`.
 */
export function serverNameOf(id: string): string | undefined {
  const colon = id.indexOf(':');
  return colon === -1 ? undefined : id.slice(colon + 1);
}

// ---- user ids ----

const USER_LOCALPART = /^[a-z0-9._=\-/+]+$/;

/** The current localpart grammar, for ids this server creates: `[a-z0-9._=\-/+]+`. */
export function isValidUserLocalpart(localpart: string): boolean {
  return USER_LOCALPART.test(localpart);
}

export interface UserId {
  readonly localpart: string;
  readonly serverName: string;
}

export interface UserIdOptions extends LengthOptions {
  /** Require the current localpart grammar (for new users); default: the historical grammar. */
  readonly strict?: boolean;
}

/** `@localpart:server`, at most 255 bytes. `undefined` if invalid. */
export function parseUserId(id: unknown, options?: UserIdOptions): UserId | undefined {
  const parsed = parseSigilled(id, '@', options);
  if (!parsed) return undefined;
  if (options?.strict && !isValidUserLocalpart(parsed.localpart)) return undefined;
  return parsed;
}

export function isValidUserId(id: unknown, options?: UserIdOptions): boolean {
  return parseUserId(id, options) !== undefined;
}

// ---- room aliases ----

export interface RoomAlias {
  readonly localpart: string;
  readonly serverName: string;
}

/** `#alias:server`, at most 255 bytes. `undefined` if invalid. */
export function parseRoomAlias(alias: unknown): RoomAlias | undefined {
  return parseSigilled(alias, '#');
}

export function isValidRoomAlias(alias: unknown): boolean {
  return parseRoomAlias(alias) !== undefined;
}

// ---- event ids and room ids ----

/** `$` + 43 characters: unpadded base64 of a SHA-256 hash. */
const HASH_ID_STANDARD = /^[A-Za-z0-9+/]{43}$/;
const HASH_ID_URL_SAFE = /^[A-Za-z0-9_-]{43}$/;

/**
 * An event id in the given format, or in any format when `format` is omitted:
 * - `v1` (rooms v1/v2): `$opaque:server`;
 * - `v3`: `$` + 43 standard base64 characters;
 * - `v4` (v4+): `$` + 43 URL-safe base64 characters.
 */
export function isValidEventId(id: unknown, format?: EventIdFormat, options?: LengthOptions): boolean {
  if (typeof id !== 'string' || id[0] !== '$') return false;
  const body = id.slice(1);
  switch (format) {
    case 'v1':
      return parseSigilled(id, '$', options) !== undefined;
    case 'v3':
      return HASH_ID_STANDARD.test(body);
    case 'v4':
      return HASH_ID_URL_SAFE.test(body);
    case undefined:
      return HASH_ID_URL_SAFE.test(body) || HASH_ID_STANDARD.test(body) || parseSigilled(id, '$', options) !== undefined;
  }
}

/**
 * A room id for `roomVersion`, or of either shape when omitted: `!opaque:server` (v1–11) or
 * `!` + 43 URL-safe base64 characters (v12: the create event's reference hash).
 */
export function isValidRoomId(id: unknown, roomVersion?: RoomVersion, options?: LengthOptions): boolean {
  if (typeof id !== 'string' || id[0] !== '!') return false;
  const hashShaped = HASH_ID_URL_SAFE.test(id.slice(1));
  if (roomVersion === undefined) return hashShaped || parseSigilled(id, '!', options) !== undefined;
  return roomVersion.roomIdFromCreateEvent ? hashShaped : parseSigilled(id, '!', options) !== undefined;
}
