// Hostile requests to every route of the registry, generated from it (a route added to
// src/api/registry.ts is fuzzed without touching this file): bad ids and %00 in every path
// parameter, hostile query strings, JSON nested 101 to 100,000 levels, U+0000 and lone
// surrogates in values and keys, huge strings, numbers beyond the double range, wrong types,
// broken JSON and UTF-8, bodies with a Content-Length over the limit and bodies that grow over
// it, unknown methods, request lines and headers over 16 KiB. Requests carry a valid access token
// where the route needs one (a fresh account replaces one that a probe logged out).
//
// Whatever the input: never a 5xx, every error a JSON Matrix error (`errcode` and `error`; a
// user-interactive-auth challenge is a 401 with `flows`), and the server keeps serving. Run on a
// single process on SQLite and on PostgreSQL, and through the built-in router in front of a real
// worker deployment (PostgreSQL, Redis, one `myelin start` process), whose replication socket is
// fuzzed too. Deterministic (seeded); the request counts are printed as test diagnostics.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Pool } from 'undici';
import { ROUTES } from '../../src/api/registry.js';
import { MAX_JSON_BODY_BYTES } from '../../src/http/dispatch.js';
import { isIdParam } from '../../src/http/path-params.js';
import type { RouteDefinition } from '../../src/http/route.js';
import { forEachBackend } from '../helpers/backends.js';
import type { TestHomeserver } from '../helpers/homeserver.js';
import { startProcessCluster, type ProcessCluster } from '../helpers/process-cluster.js';
import { rawExchange, type RawTarget } from '../helpers/raw-http.js';

const SEED = 20261128;
const CONCURRENCY = 8;

/** A small seeded PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)]!;
}

// ---- what is sent ----------------------------------------------------------------------------

/**
 * A string PostgreSQL cannot compress, so that it takes its full size in an index entry (whose
 * limit is about 2.7 KB): `length` characters of the CJK block, 3 bytes each in UTF-8.
 */
function incompressible(length: number, seed: number): string {
  const rand = prng(seed);
  return Array.from({ length }, () => String.fromCharCode(0x4e00 + Math.floor(rand() * 0x5000))).join('');
}

/** Path parameter values, already percent-encoded: ids of every wrong shape, %00, huge, odd bytes. */
const BAD_PARAMS = [
  '%00',
  'a%00b',
  '!a%00:x',
  '@a%00b:x',
  '$a%00',
  '#a%00:x',
  '%ff',
  '%ED%A0%80',
  '%C0%80',
  '%E2%98%83'.repeat(100),
  'x'.repeat(2000),
  'x'.repeat(3000),
  encodeURIComponent(incompressible(220, 1)),
  Buffer.from(incompressible(1500, 2)).toString('base64url').slice(0, 2040),
  `!${'x'.repeat(300)}:x`,
  `%40${'%C3%A9'.repeat(200)}:x`,
  '!nope',
  '%40nope',
  '%24',
  '%23',
  '..',
  '%2F',
  '%20',
  '-1',
  '1e400',
];

/** Query strings (without `?`), already encoded. */
const BAD_QUERIES = [
  'from=%00',
  'since=s1%00',
  '%00=1',
  `since=${'x'.repeat(3000)}`,
  'limit=1e400',
  'limit=-1',
  'dir=x',
  'from=%ff',
  `filter=${encodeURIComponent('{"room":{"timeline":{"types":["\\u0000"],"limit":1e400}}}')}`,
  `filter=${encodeURIComponent(`{"room":${'['.repeat(5000)}${']'.repeat(5000)}}`)}`,
  `filter=${encodeURIComponent('{"x":"\\ud800"}')}`,
  'filter=%7B',
  'at=t1-2',
  'ts=99999999999999999999',
  'full_state=maybe',
  'membership=%00',
];

const KEYS = [
  'msgtype',
  'body',
  'membership',
  'user_id',
  'reason',
  'displayname',
  'avatar_url',
  'room_version',
  'preset',
  'invite',
  'initial_state',
  'name',
  'topic',
  'visibility',
  'auth',
  'username',
  'password',
  'identifier',
  'type',
  'device_id',
  'initial_device_display_name',
  'display_name',
  'filter',
  'messages',
  'timeout',
  'typing',
  'm.fully_read',
  'm.read',
  'm.read.private',
  'thread_id',
  'order',
  'actions',
  'conditions',
  'pattern',
  'enabled',
  'search_term',
  'limit',
  'room_alias_name',
  'creation_content',
  'power_level_content_override',
  'is_direct',
  'content',
  'devices',
  'device_keys',
  'one_time_keys',
  'fallback_keys',
  'master_key',
  'self_signing_key',
  'user_signing_key',
  'rooms',
  'sessions',
  'session_data',
  'algorithm',
  'auth_data',
  'version',
  'logout_devices',
  'new_password',
  'presence',
  'status_msg',
  'mac',
  'nonce',
  'admin',
  'alias',
  'alt_aliases',
  'room_id',
  'session',
  'room',
  'account_data',
  'event_fields',
  'since',
  'server',
  'third_party_instance_id',
  'include_all_networks',
  'kind',
  'tags',
];

const ODD_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 53 + 2,
  -(2 ** 60),
  '',
  ' ',
  'x'.repeat(5000),
  '☃',
  '😀',
  '@',
  '@a:b',
  '!r:b',
  '#a:b',
  '$e',
  'm.text',
  'join',
  'invite',
  'leave',
  'ban',
  'public',
  '../../etc',
  [],
  [null],
  [1, 'a'],
  [[[]]],
  {},
  { a: { b: { c: [1] } } },
  { '': 1 },
  { __proto__: { x: 1 } },
];

/** A value for `key` shaped as that key usually is, so that `s` reaches the field's handler. */
function shaped(key: string, s: string): unknown {
  switch (key) {
    case 'identifier':
      return { type: 'm.id.user', user: s };
    case 'auth':
      return { type: 'm.login.dummy', session: s };
    case 'messages':
      return { [s]: { [s]: { body: s } }, '@fuzzer:x': { '*': { body: s } } };
    case 'device_keys':
      return { user_id: s, device_id: s, algorithms: [s], keys: { [`ed25519:${s}`]: s }, signatures: { [s]: { [s]: s } } };
    case 'one_time_keys':
    case 'fallback_keys':
      return { [`signed_curve25519:${s}`]: { key: s, signatures: { [s]: { [s]: s } } } };
    case 'master_key':
    case 'self_signing_key':
    case 'user_signing_key':
      return { user_id: s, usage: [s], keys: { [`ed25519:${s}`]: s } };
    case 'rooms':
      return {
        [s]: { sessions: { s: { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { s } } } },
        '!fuzz:x': { sessions: { [s]: { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { s } } } },
      };
    case 'sessions':
      return { [s]: { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { s } } };
    case 'invite':
    case 'devices':
    case 'alt_aliases':
    case 'actions':
      return [s];
    case 'conditions':
      return [{ kind: 'event_match', key: s, pattern: s }];
    case 'initial_state':
      return [{ type: s, state_key: s, content: { s } }];
    case 'creation_content':
    case 'power_level_content_override':
    case 'content':
    case 'auth_data':
    case 'session_data':
    case 'tags':
      return { [s]: s };
    case 'filter':
      return { generic_search_term: s, room: { timeline: { types: [s] } } };
    default:
      return s;
  }
}

const nested = (depth: number) => `{"x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;

/** Bodies that are wrong whatever the route: too deep, broken, not an object, out of range. */
const BAD_BODIES: Array<string | Buffer> = [
  nested(101),
  nested(5000),
  nested(100_000),
  '{"x":1e400}',
  '{"limit":-1e999}',
  '{"\\ud800":1}',
  '{"body":"\\udfff"}',
  '{not json',
  '',
  '[]',
  '"x"',
  '3',
  'null',
  Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), // invalid UTF-8
  Buffer.from('{"a":"\u0000"}'), // a raw control character
];

/** Strings that must never reach a column as they are. */
const HOSTILE_STRINGS = { nul: 'a\u0000b', surrogate: '\ud800', huge: incompressible(2000, 3) } as const;

/** JSON.stringify writes lone surrogates as `\udXXX` escapes, which is what a client would send. */
function hostileBody(rand: () => number, kind: keyof typeof HOSTILE_STRINGS, all: boolean): string {
  const s = HOSTILE_STRINGS[kind];
  const keys = all ? KEYS : Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(rand, KEYS));
  return JSON.stringify(Object.fromEntries(keys.map((key) => [key, shaped(key, s)])));
}

function oddBody(rand: () => number): string {
  const body: Record<string, unknown> = {};
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) body[pick(rand, KEYS)] = pick(rand, ODD_VALUES);
  return JSON.stringify(body);
}

// ---- probes ------------------------------------------------------------------------------------

interface Account {
  userId: string;
  accessToken: string;
  deviceId: string;
  roomId: string;
  eventId: string;
  /** A key backup version of its own (routes under room_keys/keys need `?version=`). */
  backupVersion: string;
}

interface Probe {
  route: RouteDefinition<never>;
  template: string;
  /** Encoded values for some path parameters; the others get plausible ones. */
  params: Record<string, string>;
  query?: string;
  body?: string | Buffer;
  auth: boolean;
  /** An Authorization header of its own (with `auth` false). */
  authorization?: string;
}

const hasBody = (route: RouteDefinition<never>) => route.body !== 'none';

/** Everything sent to one route, in a fixed order for a given PRNG state. */
function probesFor(route: RouteDefinition<never>, rand: () => number): Probe[] {
  const template = route.paths[0]!;
  const base = { route, template, params: {}, auth: route.auth !== 'none' };
  const probes: Probe[] = [{ ...base, ...(hasBody(route) ? { body: '{}' } : {}) }];
  if (route.auth !== 'none') probes.push({ ...base, auth: false, ...(hasBody(route) ? { body: '{}' } : {}) });
  // Aliases (r0, trailing slashes) once each.
  for (const other of route.paths.slice(1)) probes.push({ ...base, template: other, ...(hasBody(route) ? { body: oddBody(rand) } : {}) });
  for (const [, name] of template.matchAll(/\{(\w+)\}/g)) {
    for (const value of BAD_PARAMS) probes.push({ ...base, params: { [name!]: value }, ...(hasBody(route) ? { body: '{}' } : {}) });
  }
  for (const query of BAD_QUERIES) probes.push({ ...base, query });
  if (hasBody(route)) {
    for (const body of BAD_BODIES) probes.push({ ...base, body });
    for (const kind of ['nul', 'surrogate', 'huge'] as const) {
      probes.push({ ...base, body: hostileBody(rand, kind, true) });
      for (let i = 0; i < 3; i++) probes.push({ ...base, body: hostileBody(rand, kind, false) });
    }
    // Each field on its own with a long string no database index could hold whole (a field that
    // fails first would hide the others).
    for (const key of KEYS) probes.push({ ...base, body: JSON.stringify({ [key]: shaped(key, HOSTILE_STRINGS.huge) }) });
    probes.push({ ...base, body: JSON.stringify({ [pick(rand, KEYS)]: '☃'.repeat(100_000) }) });
    for (let i = 0; i < 6; i++) probes.push({ ...base, body: oddBody(rand), auth: rand() < 0.9 });
  } else {
    probes.push({ ...base, body: oddBody(rand) }); // a body where none is expected is ignored
  }
  // Everything at once, at random: some parameters bad, a bad query, an odd or hostile body.
  const names = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  for (let i = 0; i < 8; i++) {
    const params = Object.fromEntries(names.filter(() => rand() < 0.5).map((name) => [name, pick(rand, BAD_PARAMS)]));
    const body = hasBody(route)
      ? rand() < 0.5
        ? oddBody(rand)
        : hostileBody(rand, pick(rand, ['nul', 'surrogate', 'huge'] as const), false)
      : undefined;
    probes.push({
      ...base,
      params,
      ...(rand() < 0.5 ? { query: pick(rand, BAD_QUERIES) } : {}),
      ...(body === undefined ? {} : { body }),
      auth: rand() < 0.9,
    });
  }
  // Odd Authorization headers where a token is needed.
  if (route.auth !== 'none') {
    for (const authorization of [
      'Bearer',
      'Bearer ',
      'Basic dXNlcjpwYXNz',
      `Bearer ${'x'.repeat(8000)}`,
      'Bearer a b',
      'Bearer syt_%00_x',
    ]) {
      probes.push({ ...base, auth: false, authorization, ...(hasBody(route) ? { body: '{}' } : {}) });
    }
  }
  return probes;
}

let txnCounter = 0;

/** A value a path parameter plausibly has, so that the bad one being tested is the only one. */
function plausible(name: string, account: Account, serverName: string): string {
  switch (name) {
    case 'roomId':
    case 'roomIdOrAlias':
      return account.roomId;
    case 'userId':
      return account.userId;
    case 'eventId':
      return account.eventId;
    case 'roomAlias':
      return `#fuzz:${serverName}`;
    case 'deviceId':
      return account.deviceId;
    case 'txnId':
      return `fuzz${txnCounter++}`;
    case 'eventType':
    case 'type':
      return 'org.example.fuzz';
    case 'kind':
      return 'override';
    case 'receiptType':
      return 'm.read';
    case 'keyName':
      return 'displayname';
    default:
      return isIdParam(name) ? account.roomId : 'fuzz';
  }
}

function pathOf(probe: Probe, account: Account, serverName: string): string {
  const path = probe.template.replace(
    /\{(\w+)\}/g,
    (_, name: string) => probe.params[name] ?? encodeURIComponent(plausible(name, account, serverName)),
  );
  // timeout=0 keeps long-polls (sync) from stalling the run, version= lets key-backup bodies reach
  // the store; other routes ignore them.
  return `${path}?${probe.query ? `${probe.query}&` : ''}timeout=0&version=${account.backupVersion}`;
}

// ---- running -----------------------------------------------------------------------------------

interface FuzzTarget {
  label: string;
  /** Where the client API is: a TCP base URL... */
  baseUrl?: string;
  /** ...or a UNIX socket. */
  socketPath?: string;
  serverName: string;
  routes: readonly RouteDefinition<never>[];
  /** Whether accounts can be made here (not on a replication socket). */
  clientApi: boolean;
}

interface FuzzResult {
  requests: number;
  raw: number;
  failures: string[];
}

/** Whether an answer is acceptable; a description of what is wrong otherwise. */
function judge(status: number, contentType: string | undefined, text: string): string | undefined {
  if (status >= 500) return `${status} ${text.slice(0, 200)}`;
  if (status < 400) return undefined;
  let parsed: { errcode?: unknown; error?: unknown; flows?: unknown } | undefined;
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return `${status} not JSON: ${text.slice(0, 200)}`;
  }
  if (!contentType?.startsWith('application/json')) return `${status} with Content-Type ${contentType}`;
  // A user-interactive-auth challenge is a 401 with `flows` and no errcode (auth_response.yaml).
  if (status === 401 && Array.isArray(parsed?.flows)) return undefined;
  if (typeof parsed?.errcode !== 'string' || typeof parsed.error !== 'string')
    return `${status} without a Matrix error body: ${text.slice(0, 200)}`;
  return undefined;
}

async function call(
  pool: Pool,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const res = await pool.request({
    method: method,
    path,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}

let accountCounter = 0;

/** A new user through the API (the dummy registration flow), with a room and an event of its own. */
async function newAccount(pool: Pool): Promise<Account> {
  const username = `fuzzer${process.pid}x${accountCounter++}`;
  const password = 'fuzz-password';
  const first = await call(pool, 'POST', '/_matrix/client/v3/register', undefined, { username, password });
  const registered = await call(pool, 'POST', '/_matrix/client/v3/register', undefined, {
    username,
    password,
    auth: { type: 'm.login.dummy', session: first.json.session },
  });
  assert.equal(registered.status, 200, JSON.stringify(registered.json));
  const { user_id: userId, access_token: accessToken, device_id: deviceId } = registered.json;
  const room = await call(pool, 'POST', '/_matrix/client/v3/createRoom', accessToken, { preset: 'public_chat' });
  assert.equal(room.status, 200, JSON.stringify(room.json));
  const sent = await call(
    pool,
    'PUT',
    `/_matrix/client/v3/rooms/${encodeURIComponent(room.json.room_id)}/send/m.room.message/first`,
    accessToken,
    { msgtype: 'm.text', body: 'hello' },
  );
  assert.equal(sent.status, 200, JSON.stringify(sent.json));
  const backup = await call(pool, 'POST', '/_matrix/client/v3/room_keys/version', accessToken, {
    algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
    auth_data: { public_key: 'fuzz' },
  });
  assert.equal(backup.status, 200, JSON.stringify(backup.json));
  return { userId, accessToken, deviceId, roomId: room.json.room_id, eventId: sent.json.event_id, backupVersion: backup.json.version };
}

async function fuzz(target: FuzzTarget): Promise<FuzzResult> {
  const rand = prng(SEED);
  const origin = target.baseUrl ?? 'http://localhost';
  const pool = new Pool(origin, {
    connections: CONCURRENCY,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
    ...(target.socketPath ? { socketPath: target.socketPath } : {}),
  });
  const rawTarget: RawTarget = target.socketPath ? { socketPath: target.socketPath } : { baseUrl: target.baseUrl! };
  const failures: string[] = [];
  let requests = 0;
  let raw = 0;
  const placeholder: Account = {
    userId: `@nobody:${target.serverName}`,
    accessToken: 'none',
    deviceId: 'NONE',
    roomId: `!nowhere:${target.serverName}`,
    eventId: '$nothing',
    backupVersion: '1',
  };
  let account = target.clientApi ? await newAccount(pool) : placeholder;
  let renewing: Promise<void> | undefined;
  const renew = (stale: Account) => {
    if (account !== stale) return renewing;
    renewing ??= newAccount(pool).then((fresh) => {
      account = fresh;
      renewing = undefined;
    });
    return renewing;
  };

  try {
    // 1. Requests any client library sends, over a pool of keep-alive connections.
    const probes = target.routes.flatMap((route) => probesFor(route, rand));
    let next = 0;
    const worker = async () => {
      while (next < probes.length) {
        const probe = probes[next++]!;
        if (renewing) await renewing;
        const used = account;
        const path = pathOf(probe, used, target.serverName);
        const shownBody = typeof probe.body === 'string' ? probe.body.slice(0, 120) : probe.body ? '<bytes>' : '';
        const what = `${probe.route.method} ${path.slice(0, 300)} ${shownBody}`;
        requests++;
        try {
          const res = await pool.request({
            method: probe.route.method,
            path,
            headers: {
              ...(probe.auth
                ? { authorization: `Bearer ${used.accessToken}` }
                : probe.authorization
                  ? { authorization: probe.authorization }
                  : {}),
              'content-type': 'application/json',
            },
            ...(probe.body === undefined ? {} : { body: probe.body }),
          });
          const text = await res.body.text();
          const wrong = judge(res.statusCode, res.headers['content-type'] as string | undefined, text);
          if (wrong) failures.push(`${target.label}: ${what} → ${wrong}`);
          // A probe logged the account out (POST /logout, ...): carry on with a new one.
          if (probe.auth && target.clientApi && res.statusCode === 401 && text.includes('M_UNKNOWN_TOKEN')) await renew(used);
        } catch (err) {
          failures.push(`${target.label}: ${what} → no answer: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    // 2. What only a bare socket sends: the parser's refusals, and bodies over the limit.
    const rawProbe = async (head: string, expectStatus: number | undefined, options: Parameters<typeof rawExchange>[2] = {}) => {
      raw++;
      requests++;
      const what = `${target.label}: raw ${JSON.stringify(head.slice(0, 100))}${options.bodyBytes ? ` + ${options.bodyBytes} bytes` : ''}`;
      try {
        const res = await rawExchange(rawTarget, head, { timeoutMs: 60_000, ...options });
        const wrong = judge(res.status, res.headers['content-type'], res.text);
        if (wrong) failures.push(`${what} → ${wrong}`);
        else if (expectStatus !== undefined && res.status !== expectStatus)
          failures.push(`${what} → ${res.status} (expected ${expectStatus}) ${res.text.slice(0, 200)}`);
      } catch (err) {
        failures.push(`${what} → ${(err as Error).message.slice(0, 300)}`);
      }
    };
    const somePaths = target.routes
      .slice(0, 3)
      .map((route) => pathOf({ route, template: route.paths[0]!, params: {}, auth: true }, account, target.serverName));
    for (const path of somePaths) {
      for (const method of ['FOO', 'get', 'G@T', 'CONNECT', 'PATCH', 'TRACE', 'PROPFIND', 'M-SEARCH']) {
        await rawProbe(
          `${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`,
          ['FOO', 'get', 'G@T', 'CONNECT'].includes(method) ? 405 : undefined,
        );
      }
    }
    await rawProbe(`GET ${somePaths[0]}&q=${'a'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414);
    await rawProbe(`GET ${somePaths[0]}&q=${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414);
    await rawProbe(`GET ${somePaths[0]} HTTP/1.1\r\nHost: x\r\nCookie: ${'a'.repeat(17_000)}\r\n\r\n`, 431);
    await rawProbe(`GET ${somePaths[0]} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`, 400);
    await rawProbe(`POST ${somePaths[0]} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, undefined);
    await rawProbe(`GET ${somePaths[0]} HTTP/1.1\r\n\r\n`, undefined);
    // A Content-Length over the limit on every route that takes a body: 413 before any of it is read.
    const served = (route: RouteDefinition<never>) => (target.clientApi ? route.resource === 'client' : route.resource === 'replication');
    for (const route of target.routes.filter(hasBody)) {
      const path = pathOf({ route, template: route.paths[0]!, params: {}, auth: true }, account, target.serverName);
      const limit = route.maxBodyBytes ?? MAX_JSON_BODY_BYTES;
      await rawProbe(
        `${route.method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${account.accessToken}\r\nContent-Type: ` +
          `application/json\r\nContent-Length: ${limit + 1}\r\n\r\n`,
        served(route) ? 413 : undefined,
      );
    }
    // Whole bodies over the limit: 100 MB from a client that reads only once it has sent it all,
    // and 13 MiB without a Content-Length (chunked), growing over the limit as it arrives.
    const bodyRoute = target.routes.find((route) => hasBody(route) && served(route))!;
    const bodyPath = pathOf({ route: bodyRoute, template: bodyRoute.paths[0]!, params: {}, auth: true }, account, target.serverName);
    const auth = `Authorization: Bearer ${account.accessToken}\r\n`;
    await rawProbe(`${bodyRoute.method} ${bodyPath} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 100000000\r\n\r\n`, 413, {
      bodyBytes: 100_000_000,
      readAfterSending: true,
    });
    raw++;
    requests++;
    const grown = await pool.request({
      method: bodyRoute.method,
      path: bodyPath,
      headers: { authorization: `Bearer ${account.accessToken}`, 'content-type': 'application/json' },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < 13; i++) yield Buffer.alloc(1 << 20, 0x20);
        })(),
      ),
    });
    const grownText = await grown.body.text();
    const grownWrong =
      judge(grown.statusCode, grown.headers['content-type'] as string | undefined, grownText) ??
      (grown.statusCode === 413 ? undefined : `${grown.statusCode} (expected 413)`);
    if (grownWrong) failures.push(`${target.label}: 13 MiB chunked body → ${grownWrong}`);

    // 3. Still serving.
    const alive = await pool.request({ method: 'GET', path: target.clientApi ? '/_matrix/client/versions' : '/health' });
    await alive.body.text();
    assert.equal(alive.statusCode, 200, `${target.label} stopped serving`);
  } finally {
    await pool.close();
  }
  return { requests, raw, failures };
}

function report(t: TestContext, target: FuzzTarget, result: FuzzResult): void {
  t.diagnostic(
    `${target.label}: ${result.requests} requests to ${target.routes.length} routes (${result.raw} over bare ` +
      `sockets), ${result.failures.length} bad answers`,
  );
  assert.deepEqual(result.failures.slice(0, 30), [], `${result.failures.length} bad answers`);
}

// ---- the deployments -----------------------------------------------------------------------------

forEachBackend('fuzz: one process', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('every route of the registry: no 5xx, only Matrix errors', async (t) => {
    const target: FuzzTarget = { label: backend.name, baseUrl: hs.baseUrl, serverName: hs.serverName, routes: ROUTES, clientApi: true };
    report(t, target, await fuzz(target));
  });
});

describe('fuzz: the built-in router in front of a worker deployment', () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await startProcessCluster({ persisters: 1, generic: 1 });
  });
  after(async () => {
    await cluster.stop();
  });

  test('every route of the registry through the router: no 5xx, only Matrix errors', async (t) => {
    const target: FuzzTarget = {
      label: 'router',
      baseUrl: cluster.routerUrl!,
      serverName: cluster.serverName,
      routes: ROUTES,
      clientApi: true,
    };
    report(t, target, await fuzz(target));
  });

  test('the replication route on an event persister’s socket: no 5xx, only Matrix errors', async (t) => {
    const target: FuzzTarget = {
      label: 'replication',
      socketPath: cluster.replicationSocket('persister1'),
      serverName: cluster.serverName,
      routes: ROUTES.filter((route) => route.resource === 'replication'),
      clientApi: false,
    };
    report(t, target, await fuzz(target));
  });
});
