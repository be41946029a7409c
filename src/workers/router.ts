// The built-in router: a listener with the `router` resource forwards each request to an instance
// that may serve it (the routing table, from the route registry), over that instance's UNIX socket
// or TCP port, streaming bodies both ways. A small deployment needs no nginx at all.
//
// Stickiness follows the registry: `user` routes go to the same instance for every request of a
// user (found in the access token without a database lookup: our tokens start `syt_<localpart>_`),
// with initial syncs in their own pool when `initial_sync_instances` is set; `room` routes go to
// the same instance for every request of a room. The choice is rendezvous hashing, so adding a
// worker moves only the users (or rooms) that the new worker wins, and when the chosen instance is
// down the next-best one takes over for as long as it is.

import { createHash } from 'node:crypto';
import { Agent, request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import FindMyWay from 'find-my-way';
import { ROUTES } from '../api/registry.js';
import type { ListenerConfig } from '../config/schema.js';
import { Errors } from '../errors.js';
import { CORS_HEADERS, discardBody, MAX_JSON_BODY_BYTES, sendJson, toRouterPath } from '../http/dispatch.js';
import { startListener, type RunningListener } from '../http/listener.js';
import { HTTP_METHODS, type HttpMethod, type RouteDefinition } from '../http/route.js';
import { componentLogger, type Logger } from '../util/log.js';
import { isInitialSync, isPublicRoute, RoutingTable, type Cluster, type Endpoint } from './topology.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Headers that describe one connection, not the request: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);

/** Connection failures that happen before the instance saw anything: safe to try another. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ENOTSOCK', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);

/**
 * The order in which to try `candidates` for a request. With a sticky key, each candidate scores
 * hash(key, candidate) and the highest wins (rendezvous hashing): a key keeps its instance as long
 * as that instance exists, and the runner-up takes over only while it is down. Without a key,
 * requests rotate.
 */
export function candidateOrder(candidates: readonly string[], stickyKey: string | undefined, rotation: number): string[] {
  if (candidates.length <= 1) return [...candidates];
  if (stickyKey === undefined) {
    const start = rotation % candidates.length;
    return [...candidates.slice(start), ...candidates.slice(0, start)];
  }
  return candidates
    .map((name) => ({ name, score: createHash('sha256').update(`${stickyKey}\u0000${name}`).digest().readBigUInt64BE(0) }))
    .sort((a, b) => (a.score === b.score ? 0 : a.score > b.score ? -1 : 1))
    .map((c) => c.name);
}

/**
 * The part of an access token that names its user: `syt_<base64url localpart>_…` tokens carry the
 * localpart, so every device of a user lands on the same instance. Other tokens are their own key.
 */
export function userKeyOfToken(token: string): string {
  const match = /^syt_([^_]+)_/.exec(token);
  return match ? match[1]! : token;
}

function tokenOf(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined {
  const match = /^Bearer\s+(\S+)/i.exec(headers.authorization ?? '');
  return match?.[1] ?? (query.get('access_token') || undefined);
}

export interface RouterOptions {
  cluster: Cluster;
  log: Logger;
}

export interface Router {
  readonly handle: Handler;
  /** Closes the connections kept open to the instances. */
  close(): void;
}

export function createRouter(options: RouterOptions): Router {
  const log = componentLogger(options.log, 'router');
  const table = new RoutingTable(options.cluster);
  const finder = FindMyWay({ ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 2048 });
  for (const route of ROUTES) {
    if (!isPublicRoute(route)) continue; // the router answers its own /health; replication stays inside
    for (const path of route.paths) finder.on(route.method, toRouterPath(path), () => {}, route);
  }
  const find = (method: string, path: string) => {
    try {
      const found = finder.find(method as HttpMethod, path);
      return found
        ? { route: found.store as RouteDefinition<never>, params: found.params as Record<string, string | undefined> }
        : undefined;
    } catch {
      return undefined; // a malformed percent-escape
    }
  };

  const agents = new Map<string, Agent>();
  const agentFor = (endpoint: Endpoint) => {
    let agent = agents.get(endpoint.label);
    if (!agent) {
      agent = new Agent({ keepAlive: true, keepAliveMsecs: 30_000 });
      agents.set(endpoint.label, agent);
    }
    return agent;
  };
  let rotation = 0;

  const handle: Handler = (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    const query = new URLSearchParams(queryAt < 0 ? '' : url.slice(queryAt + 1));
    const answer = (status: number, body: unknown) => {
      discardBody(req);
      for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
      sendJson(res, status, body);
    };

    if (method === 'OPTIONS') return answer(200, {}); // CORS preflight: the same answer everywhere
    if (path === '/health' && (method === 'GET' || method === 'HEAD')) {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(method === 'HEAD' ? undefined : 'OK');
      return;
    }
    const match = find(method === 'HEAD' ? 'GET' : method, path);
    if (!match) {
      const otherMethod = HTTP_METHODS.some((m) => m !== method && find(m, path) !== undefined);
      const error = Errors.unrecognized(otherMethod ? 405 : 404);
      return answer(error.status, error.toJSON());
    }
    const { route, params } = match;
    if (!table.isServed(route.resource)) {
      const error = Errors.unrecognized(404);
      return answer(error.status, error.toJSON());
    }
    // A body the route would refuse for its size is refused here, before any of it travels on.
    if (route.body !== 'none' && Number(req.headers['content-length'] ?? NaN) > (route.maxBodyBytes ?? MAX_JSON_BODY_BYTES)) {
      const error = Errors.tooLarge();
      return answer(error.status, error.toJSON());
    }
    let pool = table.candidates(route);
    let stickyKey: string | undefined;
    if (route.sticky === 'user') {
      const token = tokenOf(req.headers, query);
      stickyKey = token === undefined ? undefined : userKeyOfToken(token);
      if (isInitialSync(route, query)) pool = table.initialSyncCandidates(route);
    } else if (route.sticky === 'room') {
      stickyKey = params.roomId;
    }
    const order = candidateOrder(pool, stickyKey, rotation++);
    const targets = order.flatMap((instance) => table.endpointOf(instance, route.resource) ?? []);
    forward(req, res, targets, { route: route.name, log, agentFor, fail: answer });
  };

  return {
    handle,
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}

interface ForwardContext {
  route: string;
  log: Logger;
  agentFor: (endpoint: Endpoint) => Agent;
  fail: (status: number, body: unknown) => void;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Sends the request to the first target that accepts a connection. A target that cannot be
 * reached is skipped, and so is one whose kept-alive connection turned out dead before it
 * answered a request without a body; once a body has started to flow, or a response has, a
 * failure is final.
 */
function forward(req: IncomingMessage, res: ServerResponse, targets: readonly Endpoint[], context: ForwardContext): void {
  const withBody = hasBody(req);
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  const peer = req.socket.remoteAddress;
  if (peer !== undefined)
    headers['x-forwarded-for'] = req.headers['x-forwarded-for'] ? `${String(req.headers['x-forwarded-for'])}, ${peer}` : peer;
  headers['x-forwarded-proto'] ??= 'http';

  let current: ClientRequest | undefined;
  let responded = false;
  res.on('close', () => {
    if (!res.writableFinished) current?.destroy();
  });

  const attempt = (index: number): void => {
    const target = targets[index];
    if (target === undefined) {
      context.log.error({ route: context.route, tried: targets.map((t) => t.label) }, 'no instance that serves this request is reachable');
      context.fail(502, Errors.badGateway('No server that can handle this request is reachable; try again later').toJSON());
      return;
    }
    const location = 'socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port };
    const upstream = request({ ...location, agent: context.agentFor(target), method: req.method, path: req.url, headers });
    current = upstream;
    let bodyStarted = false;

    upstream.on('socket', (socket) => {
      const send = () => {
        bodyStarted = withBody;
        if (withBody) req.pipe(upstream);
        else upstream.end();
      };
      if (socket.connecting) socket.once('connect', send);
      else send();
    });
    upstream.on('response', (answer) => {
      responded = true;
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name) && name !== 'transfer-encoding') out[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (responded) {
        // The instance answered and stopped reading the request (e.g. a 413 before the body): the
        // answer still goes through (it fails on its own if it was cut), and the rest of the body
        // is thrown away here.
        req.unpipe(upstream);
        discardBody(req);
        return;
      }
      if (res.destroyed || res.writableEnded) return; // the client went away; nothing to answer
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const neverConnected = NOT_CONNECTED.has(err.code ?? '');
      const staleConnection = upstream.reusedSocket && !bodyStarted;
      if (neverConnected || staleConnection) {
        context.log.warn(
          { route: context.route, target: target.instance, at: target.label, code: err.code },
          `cannot reach ${target.instance}; trying the next instance`,
        );
        attempt(staleConnection && !neverConnected ? index : index + 1);
        return;
      }
      context.log.error({ route: context.route, target: target.instance, err }, `request to ${target.instance} failed`);
      context.fail(502, Errors.badGateway('The server handling this request failed; try again later').toJSON());
    });
  };
  attempt(0);
}

/** Starts the listeners that carry the `router` resource. */
export async function startRouterListeners(listeners: readonly ListenerConfig[], router: Router, log: Logger): Promise<RunningListener[]> {
  const listenerLog = componentLogger(log, 'http.listener');
  const running: RunningListener[] = [];
  try {
    for (const listener of listeners) {
      const started = await startListener(listener, router.handle, listenerLog);
      running.push(started);
      for (const address of started.addresses) listenerLog.info(`listening on ${address} (router)`);
    }
  } catch (err) {
    await Promise.all(running.map((l) => l.close(0)));
    throw err;
  }
  return running;
}

/** Whether a listener is the router's (the only resource besides `/health`). */
export function isRouterListener(listener: ListenerConfig): boolean {
  return listener.type === 'http' && listener.resources.some((r) => r.names.includes('router'));
}
