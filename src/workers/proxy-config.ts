// `myelin proxy-config nginx|haproxy`: a complete reverse-proxy config for the configured workers,
// generated from the route registry and the routing table, so it always matches what the code
// serves. Synapse admins copy regex lists from its docs by hand; here they are derived.
//
// The plan is built once and written in each proxy's syntax:
// - pools (upstreams/backends): the instances that may serve a set of routes, with how requests
//   stick (by the user in the access token, by the room in the path, or not at all);
// - locations: one path regex per route path (the client API's version prefixes merged), and
//   which pool each method goes to; everything else goes to main.

import { ROUTES } from '../api/registry.js';
import { MAIN_INSTANCE } from '../config/roles.js';
import type { HttpMethod, RouteDefinition, Stickiness } from '../http/route.js';
import { isPublicRoute, isSyncRoute, RoutingTable, type Cluster, type Endpoint } from './topology.js';

export type PoolHash = 'user' | 'room' | undefined;

export interface Pool {
  /** The upstream/backend name. */
  readonly name: string;
  readonly instances: readonly string[];
  readonly servers: readonly Endpoint[];
  readonly hash: PoolHash;
}

/** Where a method of a location goes: one pool, or the sync/initial-sync pair chosen by `since`. */
export type PoolChoice = { readonly pool: Pool } | { readonly sync: Pool; readonly initialSync: Pool };

export interface LocationPlan {
  /** Anchored regex over the request path. */
  readonly regex: string;
  readonly byMethod: ReadonlyMap<HttpMethod, PoolChoice>;
  /** The templates it covers, for the comment above it. */
  readonly templates: readonly string[];
}

export interface ProxyPlan {
  readonly main: Pool;
  readonly pools: readonly Pool[];
  readonly locations: readonly LocationPlan[];
}

export interface ProxyOptions {
  /** nginx `listen` / haproxy `bind` value. */
  listen: string;
  serverName: string;
  maxBodyBytes: number;
}

type Route = RouteDefinition<never>;

const INITIAL_SYNC_POOL = 'myelin_initial_sync';

/** `myelin_ephemeral` for one instance; otherwise what the instances are to the route. */
function poolName(route: Route, instances: readonly string[], hash: PoolHash): string {
  let base: string;
  if (instances.length === 1) base = route.resource === 'client' ? instances[0]! : `${instances[0]}_${route.resource}`;
  else if (route.servedBy.startsWith('writer:')) base = `${route.servedBy.slice('writer:'.length)}_writers`;
  else base = `${route.resource}_workers${hash === 'user' ? '_by_user' : hash === 'room' ? '_by_room' : ''}`;
  return `myelin_${base}`.replace(/[^A-Za-z0-9_]/g, '_');
}

function hashOf(sticky: Stickiness): PoolHash {
  return sticky === 'none' ? undefined : sticky;
}

/** Turns a path template into a regex: `{param}` is one path segment, the last one may hold `/`. */
export function templateRegex(template: string): string {
  const params = [...template.matchAll(/\{\w+\}/g)];
  let regex = '';
  let at = 0;
  params.forEach((param, i) => {
    regex += escapeRegex(template.slice(at, param.index));
    const isLastSegment = i === params.length - 1 && param.index + param[0].length === template.length;
    // Event ids of room versions 3 and state keys may contain `/` (sent as %2F, which proxies decode).
    regex += isLastSegment ? '.+' : '[^/]+';
    at = param.index + param[0].length;
  });
  return `^${regex}${escapeRegex(template.slice(at))}$`;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The regex of each path template, with the client API's version prefixes merged:
 * `/_matrix/client/v3/x` and `/_matrix/client/r0/x` become `^/_matrix/client/(?:r0|v3)/x$`.
 */
function mergeVersions(templates: readonly string[]): Map<string, string[]> {
  const byRest = new Map<string, { versions: Set<string>; paths: string[] }>();
  const merged = new Map<string, string[]>();
  for (const template of templates) {
    const match = /^\/_matrix\/client\/(v\d+|r0)\/(.*)$/.exec(template);
    if (!match) {
      merged.set(templateRegex(template), [...(merged.get(templateRegex(template)) ?? []), template]);
      continue;
    }
    const entry = byRest.get(match[2]!) ?? { versions: new Set<string>(), paths: [] };
    entry.versions.add(match[1]!);
    entry.paths.push(template);
    byRest.set(match[2]!, entry);
  }
  for (const [rest, { versions, paths }] of byRest) {
    const list = [...versions].sort();
    const prefix = `/_matrix/client/${list.length === 1 ? list[0] : `(?:${list.join('|')})`}/`;
    merged.set(`^${prefix}${templateRegex(`/${rest}`).slice('^/'.length)}`, paths);
  }
  return merged;
}

/** More literal text first: a longer, more specific pattern must be tried before a shorter one. */
function specificity(regex: string): number {
  return regex.replace(/\[\^\/\]\+|\.\+|\(\?:[^)]*\)/g, '').length;
}

export function buildProxyPlan(cluster: Cluster, routes: readonly Route[] = ROUTES): ProxyPlan {
  const table = new RoutingTable(cluster);
  const pools = new Map<string, Pool>();
  const poolFor = (requested: string, instances: readonly string[], hash: PoolHash, nameHint: string): Pool => {
    // Main serving a resource on its client listener (e.g. `federation`, which includes `keys`)
    // is the main pool: what no location claims goes there anyway.
    const onMain = instances.length === 1 && instances[0] === MAIN_INSTANCE;
    const sameAsClient = onMain && table.endpointOf(MAIN_INSTANCE, requested)?.label === table.endpointOf(MAIN_INSTANCE, 'client')?.label;
    const resource = sameAsClient ? 'client' : requested;
    const effectiveHash = instances.length > 1 ? hash : undefined;
    const key = `${instances.join(',')}|${resource}|${effectiveHash ?? ''}|${nameHint === INITIAL_SYNC_POOL}`;
    let pool = pools.get(key);
    if (!pool) {
      const isMain = instances.length === 1 && instances[0] === MAIN_INSTANCE && nameHint !== INITIAL_SYNC_POOL;
      let name = isMain ? (resource === 'client' ? 'myelin_main' : `myelin_main_${resource}`) : nameHint;
      const taken = new Set([...pools.values()].map((p) => p.name));
      for (let n = 2; taken.has(name); n++) name = `${nameHint}_${n}`;
      const servers = instances.flatMap((instance) => table.endpointOf(instance, resource) ?? []);
      pool = { name, instances, servers, hash: effectiveHash };
      pools.set(key, pool);
    }
    return pool;
  };

  const main = poolFor('client', [MAIN_INSTANCE], undefined, 'myelin_main');
  const byRegex = new Map<string, { byMethod: Map<HttpMethod, PoolChoice>; templates: Set<string> }>();
  for (const route of routes) {
    if (!isPublicRoute(route) || !table.isServed(route.resource)) continue;
    const candidates = table.candidates(route);
    const hash = hashOf(route.sticky);
    const pool = poolFor(route.resource, candidates, hash, poolName(route, candidates, hash));
    // Initial syncs get their own upstream whenever syncs are routed at all, as Synapse's docs
    // advise; with the same instances as the sync pool it is the place to add dedicated ones.
    const choice: PoolChoice =
      isSyncRoute(route) && pool !== main
        ? { sync: pool, initialSync: poolFor(route.resource, table.initialSyncCandidates(route), 'user', INITIAL_SYNC_POOL) }
        : { pool };
    for (const [regex, paths] of mergeVersions(route.paths)) {
      const entry = byRegex.get(regex) ?? { byMethod: new Map(), templates: new Set<string>() };
      entry.byMethod.set(route.method, choice);
      for (const path of paths) entry.templates.add(path.replace(/^\/_matrix\/client\/(v\d+|r0)\//, '/_matrix/client/*/'));
      byRegex.set(regex, entry);
    }
  }

  const locations: LocationPlan[] = [];
  for (const [regex, { byMethod, templates }] of byRegex) {
    const allMain = [...byMethod.values()].every((c) => 'pool' in c && c.pool === main);
    if (allMain) continue; // main serves what no location claims
    locations.push({ regex, byMethod, templates: [...templates] });
  }
  locations.sort(
    (a, b) => specificity(b.regex) - specificity(a.regex) || b.regex.length - a.regex.length || a.regex.localeCompare(b.regex),
  );
  const usedPools = new Set<Pool>([main]);
  for (const location of locations) {
    for (const choice of location.byMethod.values()) {
      if ('pool' in choice) usedPools.add(choice.pool);
      else usedPools.add(choice.sync).add(choice.initialSync);
    }
  }
  return { main, pools: [...usedPools], locations };
}

/** The pool most methods of a location use; the others are exceptions to it. */
function defaultChoice(location: LocationPlan): PoolChoice {
  return location.byMethod.get('GET') ?? [...location.byMethod.values()][0]!;
}

function sameChoice(a: PoolChoice, b: PoolChoice): boolean {
  if ('pool' in a && 'pool' in b) return a.pool === b.pool;
  if ('sync' in a && 'sync' in b) return a.sync === b.sync && a.initialSync === b.initialSync;
  return false;
}

function describeChoice(choice: PoolChoice): string {
  return 'pool' in choice
    ? choice.pool.instances.join(', ')
    : `${choice.sync.instances.join(', ')} (initial syncs: ${choice.initialSync.instances.join(', ')})`;
}

function header(cluster: Cluster, tool: string): string[] {
  const files = [...cluster.main.origin.files, ...cluster.workers.map((w) => w.file)];
  return [
    `# Reverse-proxy config for Myelin (${tool}), generated by \`myelin proxy-config ${tool}\` from the route`,
    '# registry and these files; regenerate it after adding or changing workers rather than editing it:',
    ...files.map((f) => `#   ${f}`),
    `# Instances: main${cluster.workers.map((w) => `, ${w.name} (${w.app})`).join('')}.`,
  ];
}

// ------------------------------------------------------------------------------------------------
// nginx

function nginxServer(endpoint: Endpoint): string {
  return 'socketPath' in endpoint
    ? `unix:${endpoint.socketPath}`
    : `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}

function nginxString(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

function nginxTarget(choice: PoolChoice): string {
  return 'pool' in choice ? choice.pool.name : '$myelin_sync_pool';
}

/** An nginx config for the `http` block: maps, upstreams and one server block. */
export function nginxConfig(cluster: Cluster, options: ProxyOptions): string {
  const plan = buildProxyPlan(cluster);
  const out: string[] = [
    ...header(cluster, 'nginx'),
    '#',
    '# Put it in the http block, e.g. as /etc/nginx/conf.d/myelin.conf. nginx (www-data) must be able',
    '# to connect to the sockets: add it to their group (see docs/workers.md).',
    '',
  ];
  const needs = { user: false, room: false, sync: false };
  for (const pool of plan.pools) {
    if (pool.hash === 'user') needs.user = true;
    if (pool.hash === 'room') needs.room = true;
  }
  const syncChoice = plan.locations.flatMap((l) => [...l.byMethod.values()]).find((c) => 'sync' in c);
  if (syncChoice && 'sync' in syncChoice) {
    needs.sync = true;
    needs.user = true;
  }
  if (needs.user) {
    out.push(
      '# The user a request is for: the localpart in an access token of the form syt_<localpart>_…,',
      '# from the Authorization header or the access_token query parameter (the whole token otherwise).',
      'map $arg_access_token $myelin_user_from_query {',
      '    default $arg_access_token;',
      '    "~^syt_(?<myelin_query_localpart>[^_]+)_" $myelin_query_localpart;',
      '}',
      'map $http_authorization $myelin_user {',
      '    default $http_authorization;',
      '    "~^Bearer syt_(?<myelin_header_localpart>[^_]+)_" $myelin_header_localpart;',
      '    "" $myelin_user_from_query;',
      '}',
      '',
    );
  }
  if (needs.room) {
    out.push(
      '# The room a request is about, from the path.',
      'map $uri $myelin_room {',
      '    default "";',
      '    "~^/_matrix/client/[^/]+/rooms/(?<myelin_room_id>[^/]+)/" $myelin_room_id;',
      '}',
      '',
    );
  }
  if (needs.sync && syncChoice && 'sync' in syncChoice) {
    out.push(
      '# An initial sync (no `since`) is expensive: it goes to its own pool so it cannot slow ongoing syncs.',
      'map $arg_since $myelin_sync_pool {',
      `    default ${syncChoice.sync.name};`,
      `    "" ${syncChoice.initialSync.name};`,
      '}',
      '',
    );
  }

  // Locations whose methods go to different pools choose through a map on the method.
  const methodMaps = new Map<LocationPlan, string>();
  plan.locations.forEach((location, i) => {
    const fallback = defaultChoice(location);
    const exceptions = [...location.byMethod].filter(([, choice]) => !sameChoice(choice, fallback));
    if (exceptions.length === 0) return;
    const variable = `$myelin_pool_${i + 1}`;
    methodMaps.set(location, variable);
    out.push(`map $request_method ${variable} {`, `    default ${nginxTarget(fallback)};`);
    for (const [method, choice] of exceptions) out.push(`    ${method} ${nginxTarget(choice)};`);
    out.push('}');
  });
  if (methodMaps.size > 0) out.push('');

  for (const pool of plan.pools) {
    out.push(`# ${pool.instances.join(', ')}`, `upstream ${pool.name} {`);
    if (pool.hash === 'user') out.push('    hash $myelin_user consistent;');
    if (pool.hash === 'room') out.push('    hash $myelin_room consistent;');
    for (const server of pool.servers) out.push(`    server ${nginxServer(server)};`);
    out.push('    keepalive 32;', '}', '');
  }

  out.push(
    'server {',
    `    listen ${options.listen};`,
    `    server_name ${options.serverName};`,
    '    # TLS: add `listen 443 ssl;` with ssl_certificate and ssl_certificate_key here, or terminate TLS in front.',
    '',
    `    client_max_body_size ${options.maxBodyBytes};`,
    '    proxy_http_version 1.1;',
    '    proxy_set_header Connection "";',
    '    proxy_set_header Host $host;',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    # Long-polling /sync holds requests open for up to its timeout.',
    '    proxy_read_timeout 600s;',
    '    proxy_buffering off;',
    '',
  );
  for (const location of plan.locations) {
    out.push(`    # ${location.templates.join(', ')} → ${[...new Set([...location.byMethod.values()].map(describeChoice))].join(' | ')}`);
    const target = methodMaps.get(location) ?? nginxTarget(defaultChoice(location));
    out.push(`    location ~ ${nginxString(location.regex)} {`, `        proxy_pass http://${target};`, '    }');
  }
  out.push(
    '',
    '    # Everything else: the main process.',
    '    location / {',
    `        proxy_pass http://${plan.main.name};`,
    '    }',
    '}',
    '',
  );
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------
// haproxy

function haproxyServer(endpoint: Endpoint): string {
  return 'socketPath' in endpoint
    ? endpoint.socketPath
    : `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}

/** A haproxy config: defaults, one frontend and a backend per pool. */
export function haproxyConfig(cluster: Cluster, options: ProxyOptions): string {
  const plan = buildProxyPlan(cluster);
  const out: string[] = [
    ...header(cluster, 'haproxy'),
    '#',
    '# A complete haproxy.cfg (add your `global` settings). haproxy must be able to connect to the',
    '# sockets: add its user to their group (see docs/workers.md).',
    '',
    'defaults',
    '    mode http',
    '    option http-keep-alive',
    '    timeout connect 5s',
    '    timeout client 600s',
    '    # Long-polling /sync holds requests open for up to its timeout.',
    '    timeout server 600s',
    '',
    'frontend myelin',
    `    bind ${options.listen}`,
    '    option forwardfor',
    `    http-request deny deny_status 413 if { req.hdr_val(content-length) gt ${options.maxBodyBytes} }`,
  ];
  const hashes = new Set(plan.pools.map((p) => p.hash));
  // Sample expressions are single-quoted for haproxy's config parser and their regsub arguments
  // double-quoted for the argument parser, so a `)` in a regex cannot end the converter early.
  if (hashes.has('user')) {
    out.push(
      '    # The user a request is for: the localpart in an access token of the form syt_<localpart>_…',
      '    # (the whole token otherwise), from the Authorization header or the access_token parameter.',
      '    http-request set-var(txn.myelin_user) url_param(access_token) if { url_param(access_token) -m found }',
      '    http-request set-var(txn.myelin_user) req.hdr(authorization) if { req.hdr(authorization) -m found }',
      '    http-request set-var(txn.myelin_user) \'var(txn.myelin_user),regsub("^(Bearer +)?syt_([^_]+)_.*$","\\\\2")\' if { ' +
        'var(txn.myelin_user) -m reg ^(Bearer\\ +)?syt_[^_]+_ }',
    );
  }
  if (hashes.has('room')) {
    out.push(
      '    # The room a request is about, from the path.',
      '    http-request set-var(txn.myelin_room) \'path,regsub("^/_matrix/client/[^/]+/rooms/([^/]+)/.*$","\\\\1")\' if { path_reg ' +
        '^/_matrix/client/[^/]+/rooms/[^/]+/ }',
    );
  }
  plan.locations.forEach((location, i) => {
    out.push(`    acl myelin_path_${i + 1} path_reg ${location.regex}`);
  });
  out.push('    acl myelin_initial_sync url_param(since) -m len 0', '    acl myelin_has_since url_param(since) -m found');
  plan.locations.forEach((location, i) => {
    const acl = `myelin_path_${i + 1}`;
    const fallback = defaultChoice(location);
    const rules: string[] = [];
    const emit = (choice: PoolChoice, condition: string) => {
      if ('pool' in choice) rules.push(`    use_backend ${choice.pool.name} if ${acl}${condition}`);
      else {
        rules.push(`    use_backend ${choice.sync.name} if ${acl}${condition} myelin_has_since !myelin_initial_sync`);
        rules.push(`    use_backend ${choice.initialSync.name} if ${acl}${condition}`);
      }
    };
    for (const [method, choice] of location.byMethod) {
      if (!sameChoice(choice, fallback)) emit(choice, ` METH_${method}`);
    }
    emit(fallback, '');
    out.push(`    # ${location.templates.join(', ')}`, ...rules);
  });
  out.push(`    default_backend ${plan.main.name}`, '');

  for (const pool of plan.pools) {
    out.push(`# ${pool.instances.join(', ')}`, `backend ${pool.name}`);
    if (pool.hash === 'user') out.push('    balance hash var(txn.myelin_user)', '    hash-type consistent');
    else if (pool.hash === 'room') out.push('    balance hash var(txn.myelin_room)', '    hash-type consistent');
    else out.push('    balance roundrobin');
    for (const server of pool.servers) out.push(`    server ${server.instance} ${haproxyServer(server)} check`);
    out.push('');
  }
  return out.join('\n');
}
