// Turns an HTTP request into a call of a registered route and the route's answer (or a Matrix
// error) into an HTTP response. One dispatcher serves one listener: it only knows the routes of
// the resource groups that listener names.

import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay from 'find-my-way';
import type { Logger } from 'pino';
import type { ResourceName } from '../config/schema.js';
import { Errors, MatrixError } from '../errors.js';
import type { Requester } from '../handlers/requester.js';
import { DatabaseUnavailableError } from '../storage/database.js';
import { HTTP_METHODS, type HttpMethod, type RouteDefinition, type RouteRequest, type RouteResponse } from './route.js';

/** Synapse's limit for non-media request bodies: 200 × the 64 KiB PDU limit. */
export const MAX_JSON_BODY_BYTES = 200 * 65536;

export const CORS_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'X-Requested-With, Content-Type, Authorization, Date',
  'Access-Control-Expose-Headers': 'Server',
};

export interface DispatcherOptions<S> {
  routes: readonly RouteDefinition<S>[];
  resources: ReadonlySet<ResourceName>;
  services: S;
  log: Logger;
  /** Trust `X-Forwarded-For` (the listener's `x_forwarded`). */
  trustForwardedFor: boolean;
  /** Aborted at shutdown; handed to every request. */
  shutdownSignal: AbortSignal;
  /** Resolves an access token to its requester, or throws a 401 Matrix error. */
  authenticate?: (accessToken: string) => Promise<Requester>;
  /** Called after each successful authentication (e.g. to record a device's last-seen time). */
  onAuthenticated?: (requester: Requester, clientIp: string, userAgent: string | undefined) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Converts our `{param}` templates to find-my-way's `:param` syntax. */
export function toRouterPath(template: string): string {
  return template.replace(/\{(\w+)\}/g, ':$1');
}

export function createDispatcher<S>(options: DispatcherOptions<S>): Handler {
  const { services, log, shutdownSignal } = options;
  const router = FindMyWay({ ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 2048 });
  for (const route of options.routes) {
    if (!options.resources.has(route.resource)) continue;
    for (const path of route.paths) router.on(route.method, toRouterPath(path), () => {}, route);
  }

  const findRoute = (method: string, path: string) => {
    const found = router.find(method as HttpMethod, path);
    return found ? { route: found.store as RouteDefinition<S>, params: found.params } : undefined;
  };

  return (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);

    if (method === 'OPTIONS') {
      sendJson(res, 200, {});
      return;
    }
    const lookupMethod = method === 'HEAD' ? 'GET' : method;
    let match;
    try {
      match = findRoute(lookupMethod, path);
    } catch {
      match = undefined; // a malformed percent-escape in the path
    }
    if (!match) {
      const otherMethod = HTTP_METHODS.some((m) => m !== lookupMethod && safeFind(findRoute, m, path));
      const error = Errors.unrecognized(otherMethod ? 405 : 404);
      drainAndSend(req, res, error.status, error.toJSON());
      return;
    }
    const { route, params } = match;
    handle(route, params as Record<string, string>, req, res, path, queryAt < 0 ? '' : url.slice(queryAt + 1)).catch(
      (err: unknown) => {
        log.error({ err, route: route.name }, 'unexpected error while answering a request');
        if (!res.headersSent) sendJson(res, 500, Errors.unknown().toJSON());
        else res.destroy();
      },
    );
  };

  async function handle(
    route: RouteDefinition<S>,
    params: Record<string, string>,
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: string,
  ): Promise<void> {
    let response: RouteResponse;
    try {
      const queryParams = new URLSearchParams(query);
      const requester = route.auth === 'none' ? undefined : await authenticateRequest(req, queryParams, route.auth === 'user');
      const clientIp = clientIpOf(req, options.trustForwardedFor);
      if (requester) options.onAuthenticated?.(requester, clientIp, req.headers['user-agent']);
      const body = await readBody(req, route);
      const request: RouteRequest = {
        method: route.method,
        path,
        params,
        query: queryParams,
        headers: req.headers,
        body,
        clientIp,
        signal: shutdownSignal,
        requester,
      };
      response = await route.handle(request, services);
    } catch (thrown) {
      // The database is down or full for a while: a retriable 503, not a 500 (the storage layer
      // has already said so in the log, once per outage).
      const err = thrown instanceof DatabaseUnavailableError ? Errors.unavailable('The database is temporarily unavailable; try again') : thrown;
      if (err instanceof MatrixError) {
        if (thrown !== err) log.debug({ err: thrown, route: route.name }, 'request failed: database unavailable');
        else if (err.status >= 500) log.error({ err, route: route.name }, 'request failed');
        if (!res.headersSent) {
          for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
          drainAndSend(req, res, err.status, err.toJSON());
        }
        return;
      }
      throw err;
    }
    if (req.method === 'HEAD') {
      res.writeHead(response.status ?? 200, response.headers).end();
      return;
    }
    if (response.contentType !== undefined) {
      res.writeHead(response.status ?? 200, { 'Content-Type': response.contentType, ...response.headers });
      res.end(response.body as string | Buffer);
      return;
    }
    sendJson(res, response.status ?? 200, response.body, response.headers);
  }

  async function authenticateRequest(req: IncomingMessage, query: URLSearchParams, required: boolean): Promise<Requester | undefined> {
    const token = accessTokenOf(req, query);
    if (token === undefined) {
      if (required) throw Errors.missingToken();
      return undefined;
    }
    if (!options.authenticate) throw Errors.unknownToken();
    return options.authenticate(token);
  }
}

/**
 * The access token from `Authorization: Bearer` or the deprecated `access_token` query parameter.
 * Both at once is refused, as Synapse does.
 */
export function accessTokenOf(req: IncomingMessage, query: URLSearchParams): string | undefined {
  const header = req.headers.authorization;
  const fromQuery = query.get('access_token') ?? undefined;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || fromQuery !== undefined) throw Errors.missingToken();
    return match[1];
  }
  return fromQuery === '' ? undefined : fromQuery;
}

function safeFind(find: (m: string, p: string) => unknown, method: string, path: string): boolean {
  try {
    return find(method, path) !== undefined;
  } catch {
    return false;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    ...headers,
  });
  res.end(text);
}

/**
 * Sends an error before (or without) reading the whole body. Node discards an unread body to keep
 * the connection usable; a body refused for its size is not worth reading, so that connection is
 * closed after the response instead.
 */
function drainAndSend(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  if (status === 413) res.setHeader('Connection', 'close');
  req.resume();
  sendJson(res, status, body);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readBody(req: IncomingMessage, route: Pick<RouteDefinition, 'body' | 'maxBodyBytes'>): Promise<unknown> {
  if (route.body === 'none') {
    req.resume();
    return undefined;
  }
  const limit = route.maxBodyBytes ?? MAX_JSON_BODY_BYTES;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw Errors.tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw Errors.tooLarge();
    chunks.push(chunk);
  }
  const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  if (route.body === 'raw') return bytes;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw Errors.notJson('Content not JSON: invalid UTF-8');
  }
  if (text.trim() === '') {
    if (route.body === 'json-optional') return {};
    throw Errors.notJson();
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw Errors.notJson();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw Errors.badJson();
  return parsed;
}

function clientIpOf(req: IncomingMessage, trustForwardedFor: boolean): string {
  if (trustForwardedFor) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  // UNIX-socket connections have no remote address.
  return req.socket.remoteAddress ?? 'unix';
}
