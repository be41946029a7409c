// Thousands of malformed requests to every registered route: wrong types, odd values, broken
// JSON, invalid UTF-8, random query strings and path parameters. Whatever the input, the answer
// is a Matrix error or a success — never a 500 — and the server keeps serving.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Pool } from 'undici';
import { ROUTES } from '../../src/api/registry.js';
import { startTestHomeserver, type TestHomeserver, type TestUser } from '../helpers/homeserver.js';

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

const ODD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, 2 ** 53 + 2, -(2 ** 60), '', ' ', 'x'.repeat(5000), '\u0000', '☃', '😀', '@', '@a:b', '!r:b', '#a:b', '$e',
  'm.text', 'join', 'invite', 'leave', 'ban', 'public', '../../etc', [], [null], [1, 'a'], [[[]]], {}, { a: { b: { c: [1] } } }, { '': 1 }, { __proto__: { x: 1 } },
];

const KEYS = [
  'msgtype', 'body', 'membership', 'user_id', 'reason', 'displayname', 'avatar_url', 'room_version', 'preset', 'invite', 'initial_state', 'name',
  'topic', 'visibility', 'auth', 'username', 'password', 'identifier', 'type', 'device_id', 'initial_device_display_name', 'filter', 'messages',
  'timeout', 'typing', 'm.fully_read', 'm.read', 'm.read.private', 'thread_id', 'order', 'actions', 'conditions', 'pattern', 'enabled',
  'search_term', 'limit', 'room_alias_name', 'creation_content', 'power_level_content_override', 'is_direct', 'content', 'devices',
  'logout_devices', 'new_password', 'presence', 'status_msg', 'mac', 'nonce', 'admin', 'alias', 'alt_aliases', 'room_id', 'session',
  'room', 'account_data', 'event_fields', 'event_format', 'since', 'server', 'third_party_instance_id', 'include_all_networks', 'kind',
];

const QUERY_KEYS = ['since', 'timeout', 'limit', 'dir', 'from', 'to', 'filter', 'at', 'membership', 'not_membership', 'ts', 'full_state', 'set_presence', 'format', 'server', 'kind', 'use_state_after'];
const QUERY_VALUES = ['', '0', '-1', '1e9', 'abc', 's1_2_3', 's0_0_0_0_0_0_0_0', 's99999999_0_0_0_0_0_0_0', 't1-2', '{', '{"room":{"timeline":{"limit":-3}}}', '{"room":[]}', 'true', 'false', 'b', 'f', 'x'.repeat(3000), '%ZZ', '%00'];
const PARAM_VALUES = ['!nope:test.local', '#nope:test.local', '@nobody:test.local', '$nope', 'm.room.message', '', '%2F', '..', 'x'.repeat(300), '%E2%98%83', '%ff', 'm.room.power_levels', '1', 'global', 'override', '.m.rule.master'];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)]!;
}

function oddBody(rand: () => number): string | Buffer {
  const roll = rand();
  if (roll < 0.05) return '{not json';
  if (roll < 0.08) return Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]); // invalid UTF-8
  if (roll < 0.11) return JSON.stringify(pick(rand, [[], 1, 'x', null, true]));
  if (roll < 0.13) return '';
  const body: Record<string, unknown> = {};
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) body[pick(rand, KEYS)] = pick(rand, ODD_VALUES);
  return JSON.stringify(body);
}

function fillPath(rand: () => number, template: string, realRoom: string, realUser: string): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const roll = rand();
    if (roll < 0.3 && /room/i.test(name)) return encodeURIComponent(realRoom);
    if (roll < 0.5 && /user/i.test(name)) return encodeURIComponent(realUser);
    const value = pick(rand, PARAM_VALUES);
    return value === '' ? 'x' : value.startsWith('%') ? value : encodeURIComponent(value);
  });
}

let hs: TestHomeserver;
let user: TestUser;
let roomId: string;
before(async () => {
  hs = await startTestHomeserver();
  user = await hs.createUser('fuzzer');
  const res = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body: { preset: 'public_chat' } });
  roomId = res.json.room_id;
});
after(() => hs.stop());

test('no request to any route is answered with a 500, and the server stays up', async () => {
  const rand = prng(20261128);
  const pool = new Pool(hs.baseUrl, { connections: 8 });
  const failures: string[] = [];
  const requests = Number(process.env.MYELIN_FUZZ_REQUESTS ?? 3000);
  try {
    const jobs: Array<() => Promise<void>> = [];
    for (let i = 0; i < requests; i++) {
      const route = ROUTES[i % ROUTES.length]!;
      const template = pick(rand, route.paths);
      let path = fillPath(rand, template, roomId, user.userId);
      if (rand() < 0.6) {
        const params = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => `${pick(rand, QUERY_KEYS)}=${encodeURIComponent(pick(rand, QUERY_VALUES))}`);
        path += `?${params.join('&')}`;
      }
      const body = route.method === 'GET' || route.method === 'DELETE' ? (rand() < 0.1 ? oddBody(rand) : undefined) : oddBody(rand);
      const authenticated = rand() < 0.85;
      // Long-polls must not stall the run.
      if (path.includes('/sync')) path += (path.includes('?') ? '&' : '?') + 'timeout=0';
      jobs.push(async () => {
        const res = await pool.request({
          method: route.method,
          path,
          headers: { ...(authenticated ? { authorization: `Bearer ${user.accessToken}` } : {}), 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body }),
        });
        const text = await res.body.text();
        if (res.statusCode >= 500) failures.push(`${route.method} ${path} ${typeof body === 'string' ? body.slice(0, 200) : '<bytes>'} → ${res.statusCode} ${text.slice(0, 200)}`);
        else if (res.statusCode >= 400) {
          const parsed = JSON.parse(text) as { errcode?: unknown; error?: unknown; flows?: unknown };
          // A user-interactive-auth challenge is a 401 with `flows` and no errcode (auth_response.yaml).
          const uiaChallenge = res.statusCode === 401 && Array.isArray(parsed.flows);
          if (!uiaChallenge && (typeof parsed.errcode !== 'string' || typeof parsed.error !== 'string')) failures.push(`${route.method} ${path} → ${res.statusCode} without a Matrix error body: ${text.slice(0, 200)}`);
        }
      });
    }
    for (let i = 0; i < jobs.length; i += 16) await Promise.all(jobs.slice(i, i + 16).map((job) => job()));
  } finally {
    await pool.close();
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} bad answers`);
  const alive = await hs.call('GET', '/_matrix/client/versions');
  assert.equal(alive.status, 200);
});
