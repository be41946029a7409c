import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_FEDERATION_PORT,
  WELL_KNOWN_DEFAULT_CACHE_MS,
  WELL_KNOWN_INVALID_CACHE_MS,
  WELL_KNOWN_MAX_BYTES,
  WELL_KNOWN_MAX_CACHE_MS,
  WELL_KNOWN_MIN_CACHE_MS,
  cacheLifetimeFromHeaders,
  classifyWellKnownResponse,
  formatHostAndPort,
  isIpLiteralServerName,
  nextWellKnownCacheEntry,
  orderSrvRecords,
  parseCacheControl,
  parseWellKnownServer,
  parseWellKnownServerText,
  planServerDiscovery,
  splitServerName,
  srvNamesFor,
  wellKnownCacheState,
  wellKnownUnreachableCacheMs,
  type SrvRecord,
  type FederationTarget,
  type ServerNameParts,
  type WellKnownCacheEntry,
} from '../../src/core/server-names.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NOW = Date.UTC(2026, 0, 1);

test('server names split into hostname, port and IP-literal kind', () => {
  assert.deepEqual(splitServerName('example.org'), {
    serverName: 'example.org',
    hostname: 'example.org',
    port: undefined,
    ipLiteral: undefined,
  });
  assert.deepEqual(splitServerName('example.org:8448'), {
    serverName: 'example.org:8448',
    hostname: 'example.org',
    port: 8448,
    ipLiteral: undefined,
  });
  assert.deepEqual(splitServerName('1.2.3.4:1234'), { serverName: '1.2.3.4:1234', hostname: '1.2.3.4', port: 1234, ipLiteral: 4 });
  assert.deepEqual(splitServerName('[1234:5678::abcd]'), {
    serverName: '[1234:5678::abcd]',
    hostname: '1234:5678::abcd',
    port: undefined,
    ipLiteral: 6,
  });
  assert.deepEqual(splitServerName('[::ffff:1.2.3.4]:5678')?.hostname, '::ffff:1.2.3.4');
  // A dotted quad out of range is a (grammatically valid) DNS name, not an IP literal.
  assert.equal(splitServerName('300.1.1.1')?.ipLiteral, undefined);
  for (const bad of [
    '',
    'example.org:',
    'example.org:0',
    'example.org:65536',
    'example.org:99999',
    '[::1',
    '::1',
    '[::1]x',
    'a..b',
    'exa mple.org',
  ]) {
    assert.equal(splitServerName(bad), undefined, bad);
  }
  assert.ok(isIpLiteralServerName('[::1]:8448'));
  assert.ok(isIpLiteralServerName('127.0.0.1'));
  assert.ok(!isIpLiteralServerName('localhost:8448'));
});

test('host and port are joined with IPv6 brackets', () => {
  assert.equal(formatHostAndPort('example.org'), 'example.org');
  assert.equal(formatHostAndPort('example.org', 443), 'example.org:443');
  assert.equal(formatHostAndPort('::1', 8448), '[::1]:8448');
  assert.equal(formatHostAndPort('1.2.3.4', 80), '1.2.3.4:80');
});

test('.well-known bodies: m.server must be a server name; other keys are ignored', () => {
  const ok = parseWellKnownServer({ 'm.server': 'delegated.example.com:1234', other: 1 });
  assert.ok(ok.ok);
  assert.equal(ok.delegated.hostname, 'delegated.example.com');
  assert.equal(ok.delegated.port, 1234);
  for (const body of [
    null,
    [],
    'x',
    {},
    { 'm.server': 1 },
    { 'm.server': '' },
    { 'm.server': 'https://example.com' },
    { 'm.server': 'a:70000' },
    { 'm.server': 'host/path' },
  ]) {
    assert.equal(parseWellKnownServer(body).ok, false, JSON.stringify(body));
  }
  assert.ok(parseWellKnownServerText('{"m.server": "[::1]:8448"}').ok);
  assert.deepEqual(parseWellKnownServerText('{not json'), { ok: false, reason: 'the body is not JSON' });
  const huge = JSON.stringify({ 'm.server': 'a.b', pad: 'x'.repeat(WELL_KNOWN_MAX_BYTES) });
  assert.equal(parseWellKnownServerText(huge).ok, false);
});

test('.well-known responses: 5xx is unreachable, other non-200 and bad bodies are invalid', () => {
  assert.equal(classifyWellKnownResponse(503, '').kind, 'unreachable');
  assert.equal(classifyWellKnownResponse(500, '{"m.server":"a.b"}').kind, 'unreachable');
  assert.equal(classifyWellKnownResponse(404, '{"m.server":"a.b"}').kind, 'invalid');
  assert.equal(classifyWellKnownResponse(200, '<html>').kind, 'invalid');
  assert.equal(classifyWellKnownResponse(200, JSON.stringify({ pad: 'x'.repeat(WELL_KNOWN_MAX_BYTES) })).kind, 'unreachable');
  const delegated = classifyWellKnownResponse(200, '{"m.server":"b.example:443"}', { 'cache-control': 'max-age=60' });
  assert.equal(delegated.kind, 'delegated');
  assert.equal(delegated.kind === 'delegated' && delegated.delegated.serverName, 'b.example:443');
});

test('Cache-Control and Expires give the lifetime', () => {
  assert.deepEqual(
    [...parseCacheControl({ 'Cache-Control': 'public, Max-Age="120", no-transform' })],
    [
      ['public', undefined],
      ['max-age', '120'],
      ['no-transform', undefined],
    ],
  );
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': 'max-age=3600' }, NOW), 3600_000);
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': ['public', 'max-age=10'] }, NOW), 10_000);
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': 'no-store, max-age=3600' }, NOW), 0);
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': 'no-cache' }, NOW), 0);
  assert.equal(cacheLifetimeFromHeaders({}, NOW), undefined);
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': 'max-age=soon' }, NOW), undefined);
  const inTwoHours = new Date(NOW + 2 * HOUR).toUTCString();
  assert.equal(cacheLifetimeFromHeaders({ expires: inTwoHours }, NOW), 2 * HOUR);
  // Relative to the response's Date when there is one (immune to clock skew).
  assert.equal(cacheLifetimeFromHeaders({ expires: inTwoHours, date: new Date(NOW + HOUR).toUTCString() }, NOW), HOUR);
  assert.equal(cacheLifetimeFromHeaders({ Expires: '0' }, NOW), 0);
  assert.equal(cacheLifetimeFromHeaders({ expires: new Date(NOW - HOUR).toUTCString() }, NOW), 0);
  // max-age wins over Expires
  assert.equal(cacheLifetimeFromHeaders({ 'cache-control': 'max-age=5', expires: inTwoHours }, NOW), 5000);
});

const delegatedTo = (name: string): ServerNameParts => splitServerName(name)!;

test('a delegation is cached by its headers, within 5 minutes and 48 hours; 24 hours without headers', () => {
  const d = delegatedTo('b.example');
  const cached = (headers: Record<string, string>) => nextWellKnownCacheEntry(undefined, { kind: 'delegated', delegated: d, headers }, NOW);
  assert.equal(cached({}).expiresAt, NOW + WELL_KNOWN_DEFAULT_CACHE_MS);
  assert.equal(cached({ 'cache-control': 'max-age=7200' }).expiresAt, NOW + 2 * HOUR);
  assert.equal(cached({ 'cache-control': 'max-age=999999999' }).expiresAt, NOW + WELL_KNOWN_MAX_CACHE_MS);
  assert.equal(cached({ 'cache-control': 'no-store' }).expiresAt, NOW + WELL_KNOWN_MIN_CACHE_MS);
  assert.equal(cached({ 'cache-control': 'max-age=0' }).expiresAt, NOW + WELL_KNOWN_MIN_CACHE_MS);
  const entry = cached({ 'cache-control': 'max-age=1000' });
  assert.equal(entry.refreshAt, NOW + 800_000, 'refetch with a fifth of the lifetime left');
  assert.equal(entry.consecutiveFailures, 0);
  assert.equal(entry.delegated, d);
  // The default lifetime is spread by ±10 %.
  const early = nextWellKnownCacheEntry(undefined, { kind: 'delegated', delegated: d, headers: {} }, NOW, 0);
  const late = nextWellKnownCacheEntry(undefined, { kind: 'delegated', delegated: d, headers: {} }, NOW, 0.999999);
  assert.equal(early.expiresAt, NOW + 0.9 * WELL_KNOWN_DEFAULT_CACHE_MS);
  assert.ok(late.expiresAt > NOW + 1.0999 * WELL_KNOWN_DEFAULT_CACHE_MS && late.expiresAt <= NOW + 1.1 * WELL_KNOWN_DEFAULT_CACHE_MS);
});

test('"no delegation" answers are cached for an hour; unreachable servers back off from 2 minutes to an hour', () => {
  const invalid = nextWellKnownCacheEntry(undefined, { kind: 'invalid', reason: '404' }, NOW);
  assert.deepEqual(
    { ...invalid },
    { delegated: undefined, expiresAt: NOW + WELL_KNOWN_INVALID_CACHE_MS, refreshAt: NOW + 0.8 * HOUR, consecutiveFailures: 1 },
  );

  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100, 5000].map(wellKnownUnreachableCacheMs), [
    2 * MINUTE,
    4 * MINUTE,
    8 * MINUTE,
    16 * MINUTE,
    32 * MINUTE,
    HOUR,
    HOUR,
    HOUR,
    HOUR,
  ]);
  let entry: WellKnownCacheEntry | undefined;
  const lifetimes: number[] = [];
  let now = NOW;
  for (let i = 0; i < 7; i++) {
    entry = nextWellKnownCacheEntry(entry, { kind: 'unreachable', reason: 'ECONNREFUSED' }, now);
    lifetimes.push(entry.expiresAt - now);
    now = entry.expiresAt;
  }
  assert.deepEqual(
    lifetimes,
    [2, 4, 8, 16, 32, 60, 60].map((m) => m * MINUTE),
  );
  assert.equal(entry!.consecutiveFailures, 7);
  // A success resets the backoff.
  const after = nextWellKnownCacheEntry(entry, { kind: 'delegated', delegated: delegatedTo('b.example'), headers: {} }, now);
  assert.equal(after.consecutiveFailures, 0);
  const again = nextWellKnownCacheEntry(after, { kind: 'invalid', reason: 'bad json' }, now);
  assert.equal(again.consecutiveFailures, 1);
});

test('an unreachable server keeps its unexpired delegation; only the next retry is delayed', () => {
  const d = delegatedTo('b.example:443');
  const valid = nextWellKnownCacheEntry(undefined, { kind: 'delegated', delegated: d, headers: { 'cache-control': 'max-age=3600' } }, NOW);
  const inGrace = NOW + 50 * MINUTE; // past refreshAt (48 min), before expiry
  assert.equal(wellKnownCacheState(valid, inGrace), 'refresh');
  const kept = nextWellKnownCacheEntry(valid, { kind: 'unreachable', reason: 'timeout' }, inGrace);
  assert.equal(kept.delegated, d);
  assert.equal(kept.expiresAt, valid.expiresAt);
  assert.equal(kept.refreshAt, Math.min(valid.expiresAt, inGrace + 2 * MINUTE));
  assert.equal(wellKnownCacheState(kept, inGrace + MINUTE), 'fresh');
  // Once expired, the delegation is gone.
  const gone = nextWellKnownCacheEntry(kept, { kind: 'unreachable', reason: 'timeout' }, valid.expiresAt);
  assert.equal(gone.delegated, undefined);
  // An "invalid" answer replaces the delegation at once: the server said it has none.
  assert.equal(nextWellKnownCacheEntry(valid, { kind: 'invalid', reason: '404' }, inGrace).delegated, undefined);
});

test('cache states', () => {
  const entry: WellKnownCacheEntry = { delegated: undefined, expiresAt: NOW + 100, refreshAt: NOW + 80, consecutiveFailures: 0 };
  assert.equal(wellKnownCacheState(undefined, NOW), 'expired');
  assert.equal(wellKnownCacheState(entry, NOW), 'fresh');
  assert.equal(wellKnownCacheState(entry, NOW + 80), 'refresh');
  assert.equal(wellKnownCacheState(entry, NOW + 100), 'expired');
});

test('SRV records: by priority, weighted within a priority, "." means none', () => {
  const rec = (name: string, priority: number, weight: number, port = 8448) => ({ name, port, priority, weight });
  const records = [rec('c', 20, 0), rec('a', 10, 10), rec('b', 10, 30), rec('d', 30, 5, 0)];
  assert.deepEqual(
    orderSrvRecords(records).map((r) => r.name),
    ['a', 'b', 'c'],
    'random 0: first by weight order',
  );
  assert.deepEqual(
    orderSrvRecords(records, () => 0.5).map((r) => r.name),
    ['b', 'a', 'c'],
    'pick 20 of 40 falls in b',
  );
  assert.deepEqual(orderSrvRecords([rec('.', 0, 0)]), []);
  assert.deepEqual(orderSrvRecords([rec('', 0, 0), rec('x', 0, 0, 70000)]), []);
  // Weighted choice: with weights 1 and 3, b is first three times out of four.
  let seed = 0;
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < 400; i++) {
    const first = orderSrvRecords([rec('a', 0, 1), rec('b', 0, 3)], () => ((seed = (seed + 0.61803398875) % 1), seed))[0]!;
    counts[first.name as 'a' | 'b']++;
  }
  assert.ok(counts.b > 250 && counts.a > 50, JSON.stringify(counts));
});

/** Runs the planner to the end with the given answers, recording the lookups it asked for. */
function resolve(serverName: string, answers: { wellKnown?: string | null; srv?: Record<string, { name: string; port: number }[]> }) {
  const asked: string[] = [];
  const known: { wellKnown?: ServerNameParts | null; srv: Record<string, SrvRecord[]> } = { srv: {} };
  for (let i = 0; i < 10; i++) {
    const step = planServerDiscovery(serverName, known);
    switch (step.kind) {
      case 'connect':
        return { asked, target: step.target };
      case 'invalid-server-name':
        return { asked, invalid: step.reason };
      case 'fetch-well-known': {
        asked.push(step.url);
        const body = answers.wellKnown;
        known.wellKnown = body === undefined || body === null ? null : splitServerName(body)!;
        break;
      }
      case 'lookup-srv':
        asked.push(step.srvName);
        known.srv[step.srvName] = (answers.srv?.[step.srvName] ?? []).map((r) => ({ ...r, priority: 0, weight: 0 }));
        break;
    }
  }
  throw new Error('the planner did not finish');
}

const target = (t: Partial<FederationTarget>) => t;

test('discovery step 1: an IP literal is used directly, Host is the server name, no SNI', () => {
  assert.deepEqual(resolve('1.2.3.4', {}), {
    asked: [],
    target: target({
      endpoints: [{ host: '1.2.3.4', port: 8448, isIpLiteral: true }],
      hostHeader: '1.2.3.4',
      tlsServerName: undefined,
      certificateName: '1.2.3.4',
      step: '1',
    }),
  });
  assert.deepEqual(resolve('[2001:db8::1]:8080', {}).target, {
    endpoints: [{ host: '2001:db8::1', port: 8080, isIpLiteral: true }],
    hostHeader: '[2001:db8::1]:8080',
    tlsServerName: undefined,
    certificateName: '2001:db8::1',
    step: '1',
  });
});

test('discovery step 2: a hostname with a port skips .well-known and SRV', () => {
  assert.deepEqual(resolve('example.org:8449', { wellKnown: 'never.example' }), {
    asked: [],
    target: target({
      endpoints: [{ host: 'example.org', port: 8449, isIpLiteral: false }],
      hostHeader: 'example.org:8449',
      tlsServerName: 'example.org',
      certificateName: 'example.org',
      step: '2',
    }),
  });
});

test('discovery step 3: the .well-known delegation in its five forms', () => {
  // 3.1 delegated IP literal: Host is the m.server value
  assert.deepEqual(resolve('example.org', { wellKnown: '[::1]:9000' }), {
    asked: ['https://example.org/.well-known/matrix/server'],
    target: target({
      endpoints: [{ host: '::1', port: 9000, isIpLiteral: true }],
      hostHeader: '[::1]:9000',
      tlsServerName: undefined,
      certificateName: '::1',
      step: '3.1',
    }),
  });
  assert.equal(resolve('example.org', { wellKnown: '10.0.0.1' }).target?.endpoints[0]?.port, DEFAULT_FEDERATION_PORT);
  // 3.2 delegated hostname with port
  assert.deepEqual(resolve('example.org', { wellKnown: 'matrix.example.org:443' }).target, {
    endpoints: [{ host: 'matrix.example.org', port: 443, isIpLiteral: false }],
    hostHeader: 'matrix.example.org:443',
    tlsServerName: 'matrix.example.org',
    certificateName: 'matrix.example.org',
    step: '3.2',
  });
  // 3.3 SRV _matrix-fed of the delegated hostname; Host/SNI stay the delegated hostname
  const srv33 = resolve('example.org', {
    wellKnown: 'matrix.example.org',
    srv: { '_matrix-fed._tcp.matrix.example.org': [{ name: 'fed1.hosting.net.', port: 8443 }] },
  });
  assert.deepEqual(srv33.asked, ['https://example.org/.well-known/matrix/server', '_matrix-fed._tcp.matrix.example.org']);
  assert.deepEqual(srv33.target, {
    endpoints: [{ host: 'fed1.hosting.net', port: 8443, isIpLiteral: false }],
    hostHeader: 'matrix.example.org',
    tlsServerName: 'matrix.example.org',
    certificateName: 'matrix.example.org',
    step: '3.3',
  });
  // 3.4 the deprecated _matrix SRV only when _matrix-fed has none
  const srv34 = resolve('example.org', {
    wellKnown: 'matrix.example.org',
    srv: { '_matrix._tcp.matrix.example.org': [{ name: 'old.hosting.net', port: 8448 }] },
  });
  assert.deepEqual(srv34.asked.slice(1), ['_matrix-fed._tcp.matrix.example.org', '_matrix._tcp.matrix.example.org']);
  assert.equal(srv34.target?.step, '3.4');
  assert.equal(srv34.target?.hostHeader, 'matrix.example.org');
  assert.equal(srv34.target?.endpoints[0]?.host, 'old.hosting.net');
  // 3.5 no SRV: the delegated hostname on 8448
  assert.deepEqual(resolve('example.org', { wellKnown: 'matrix.example.org' }).target, {
    endpoints: [{ host: 'matrix.example.org', port: 8448, isIpLiteral: false }],
    hostHeader: 'matrix.example.org',
    tlsServerName: 'matrix.example.org',
    certificateName: 'matrix.example.org',
    step: '3.5',
  });
});

test('discovery steps 4-6: without a delegation, SRV of the hostname, then the hostname on 8448', () => {
  const four = resolve('example.org', {
    wellKnown: null,
    srv: { '_matrix-fed._tcp.example.org': [{ name: 'srv.example.net', port: 443 }] },
  });
  assert.deepEqual(four.target, {
    endpoints: [{ host: 'srv.example.net', port: 443, isIpLiteral: false }],
    hostHeader: 'example.org',
    tlsServerName: 'example.org',
    certificateName: 'example.org',
    step: '4',
  });
  assert.equal(
    resolve('example.org', { wellKnown: null, srv: { '_matrix._tcp.example.org': [{ name: 'legacy.example.net', port: 8448 }] } }).target
      ?.step,
    '5',
  );
  const six = resolve('example.org', { wellKnown: null });
  assert.deepEqual(six.asked, [
    'https://example.org/.well-known/matrix/server',
    '_matrix-fed._tcp.example.org',
    '_matrix._tcp.example.org',
  ]);
  assert.deepEqual(six.target, {
    endpoints: [{ host: 'example.org', port: 8448, isIpLiteral: false }],
    hostHeader: 'example.org',
    tlsServerName: 'example.org',
    certificateName: 'example.org',
    step: '6',
  });
});

test('discovery of invalid server names, and SRV names', () => {
  assert.equal(planServerDiscovery('bad name').kind, 'invalid-server-name');
  assert.equal(planServerDiscovery('host:0').kind, 'invalid-server-name');
  assert.deepEqual(srvNamesFor('example.org'), ['_matrix-fed._tcp.example.org', '_matrix._tcp.example.org']);
  // Several SRV records become several endpoints, in order.
  const step = planServerDiscovery('example.org', {
    wellKnown: null,
    srv: {
      '_matrix-fed._tcp.example.org': [
        { name: 'b.example.net', port: 1, priority: 20, weight: 0 },
        { name: 'a.example.net', port: 2, priority: 10, weight: 0 },
      ],
    },
  });
  assert.equal(step.kind, 'connect');
  assert.deepEqual(step.kind === 'connect' && step.target.endpoints.map((e) => e.host), ['a.example.net', 'b.example.net']);
});
