// Turns an HTTP request into a call of a registered route and the route's answer (or a Matrix
// error) into an HTTP response. One dispatcher serves one listener: it only knows the routes of
// the resource groups that listener names.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import FindMyWay from 'find-my-way';
import type { Logger } from 'pino';
import type { ResourceName } from '../config/schema.js';
import { JsonInputError, parseJsonInput, type JsonValue } from '../core/json.js';
import { Errors, MatrixError, parseInput } from '../errors.js';
import type { Requester } from '../handlers/kernel/requester.js';
import { DatabaseUnavailableError } from '../storage/database.js';
import { checkPathParams, checkQueryParams } from './path-params.js';
import { HTTP_METHODS, type AnyRouteRequest, type HttpMethod, type RouteDefinition, type RouteResponse } from './route.js';

/** Synapse's limit for non-media request bodies: 200 × the 64 KiB PDU limit. */
export const MAX_JSON_BODY_BYTES = 200 * 65536;

/**
 * How long the rest of a body the answer did not need is read and thrown away before the
 * connection is closed (nginx's `lingering_time`).
 */
export const BODY_LINGER_MS = 30_000;

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
  /**
   * Authenticates a request from another homeserver (routes with `auth: 'server'`): checks its
   * `X-Matrix` signature and returns the origin, or throws a 401 Matrix error. Without one, such
   * routes answer 401 `M_UNAUTHORIZED`.
   */
  authenticateServer?: (request: SignedRequest) => Promise<{ origin: string }>;
  /**
   * Runs the handling of an authenticated server request under its origin's limits
   * (`rc_federation`): every `auth: 'server'` route goes through it.
   */
  limitServer?: <T>(origin: string, handle: () => Promise<T>) => Promise<T>;
  /**
   * For `auth: 'server'` routes with a `{roomId}`: throws 403 `M_FORBIDDEN` when the room's server
   * ACL denies the origin (spec: server-server API §Server Access Control Lists).
   */
  checkServerRoom?: (origin: string, roomId: string) => Promise<void>;
}

/**
 * What a server-signed request's signature covers (spec: server-server API, §Request
 * Authentication), as received: the method, the request target exactly as sent, and the body.
 */
export interface SignedRequest {
  readonly method: HttpMethod;
  /** The request target as it arrived (path and query, percent-escapes untouched). */
  readonly uri: string;
  readonly headers: IncomingMessage['headers'];
  /** The body's bytes as received; undefined for a route without a body. */
  readonly rawBody: Buffer | undefined;
  /** The body parsed as JSON (`json` routes; undefined when empty). */
  readonly content: JsonValue | undefined;
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
      discardBody(req);
      sendJson(res, error.status, error.toJSON());
      return;
    }
    const { route, params } = match;
    handle(route, params as Record<string, string>, req, res, path, queryAt < 0 ? '' : url.slice(queryAt + 1)).catch((err: unknown) => {
      log.error({ err, route: route.name }, 'unexpected error while answering a request');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      discardBody(req);
      sendJson(res, 500, Errors.unknown().toJSON());
    });
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
      const clientIp = clientIpOf(req, options.trustForwardedFor);
      let requester: Requester | undefined;
      if (route.auth === 'user' || route.auth === 'guest') {
        requester = await authenticateUser(req, queryParams);
        options.onAuthenticated?.(requester, clientIp, req.headers['user-agent']);
        if (route.auth === 'user' && requester.isGuest) throw Errors.guestAccessForbidden();
      }
      checkPathParams(params);
      checkQueryParams(queryParams);
      const bytes = await readBodyBytes(req, route);
      const json = bytes === undefined || route.body === 'raw' ? undefined : decodeJsonBody(bytes, route);
      let origin: string | undefined;
      if (route.auth === 'server') {
        if (!options.authenticateServer) throw Errors.unauthorized('Federation is not enabled on this server');
        ({ origin } = await options.authenticateServer({
          method: route.method,
          uri: req.url ?? '/',
          headers: req.headers,
          rawBody: bytes,
          content: json,
        }));
      }
      let body: unknown = route.body === 'raw' ? bytes : json;
      if (route.bodySchema) body = parseInput(route.bodySchema, body);
      const request: AnyRouteRequest = {
        method: route.method,
        path,
        params,
        query: queryParams,
        headers: req.headers,
        body,
        clientIp,
        signal: shutdownSignal,
        ...(requester ? { requester } : {}),
        ...(origin === undefined ? {} : { origin }),
      };
      if (origin === undefined) response = await route.handle(request, services);
      else {
        const serverOrigin = origin;
        const handleServerRequest = async () => {
          if (params.roomId !== undefined) await options.checkServerRoom?.(serverOrigin, params.roomId);
          return route.handle(request, services);
        };
        response = await (options.limitServer ? options.limitServer(serverOrigin, handleServerRequest) : handleServerRequest());
      }
    } catch (thrown) {
      // The database is down or full for a while: a retriable 503, not a 500 (the storage layer
      // has already said so in the log, once per outage).
      const err =
        thrown instanceof DatabaseUnavailableError ? Errors.unavailable('The database is temporarily unavailable; try again') : thrown;
      if (err instanceof MatrixError) {
        if (thrown !== err) log.debug({ err: thrown, route: route.name }, 'request failed: database unavailable');
        else if (err.status >= 500) log.error({ err, route: route.name }, 'request failed');
        if (!res.headersSent) {
          for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
          discardBody(req);
          sendJson(res, err.status, err.toJSON());
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

  async function authenticateUser(req: IncomingMessage, query: URLSearchParams): Promise<Requester> {
    const token = accessTokenOf(req, query);
    if (token === undefined) throw Errors.missingToken();
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
 * Throws away what is left of a request body that the answer does not need (an error, or a route
 * without a body). The answer may go out while the client is still sending, and a client that
 * reads only once it has sent everything must still find it: closing the connection with unread
 * data would reset it and lose the answer. So the rest is read while it arrives, and the
 * connection can then carry the next request; a body still arriving after `lingerMs` ends the
 * connection (as nginx's lingering close does).
 */
export function discardBody(req: IncomingMessage, lingerMs = BODY_LINGER_MS): void {
  req.resume();
  if (req.complete || req.destroyed) return;
  const socket = req.socket;
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  const done = () => {
    clearTimeout(timer);
    socket.off('close', done); // a kept-alive socket carries many requests
  };
  req.once('end', done);
  socket.once('close', done);
  closeLingering(socket, lingerMs);
}

/**
 * When the response closes the connection (the client sent `Connection: close`), Node ends it with
 * `destroySoon()`: the socket is destroyed as soon as the answer is written, and the body still
 * arriving makes the kernel reset the connection, which can drop the answer before the client
 * has read it. This socket closes the way RFC 9112 §9.6 asks instead: the write side first, then
 * reading until the client closes too, for at most `lingerMs`.
 */
function closeLingering(socket: Socket, lingerMs: number): void {
  socket.destroySoon = function lingeringClose(this: Socket) {
    this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The body's bytes (undefined for a route without one, whose body is thrown away), within the
 * route's limit (413 `M_TOO_LARGE`).
 */
async function readBodyBytes(req: IncomingMessage, route: Pick<RouteDefinition, 'body' | 'maxBodyBytes'>): Promise<Buffer | undefined> {
  if (route.body === 'none') {
    discardBody(req);
    return undefined;
  }
  const limit = route.maxBodyBytes ?? MAX_JSON_BODY_BYTES;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw Errors.tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early must not destroy the request: its socket still has an answer to carry.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw Errors.tooLarge();
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/**
 * A JSON body: a JSON object, or undefined for an empty body where the route's schema accepts
 * none (`json-optional`). Anything else is 400 `M_NOT_JSON` / `M_BAD_JSON`.
 */
function decodeJsonBody(bytes: Buffer, route: Pick<RouteDefinition, 'body' | 'maxJsonDepth' | 'acceptsNul'>): JsonValue | undefined {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw Errors.notJson('Content not JSON: invalid UTF-8');
  }
  if (text.trim() === '') {
    if (route.body === 'json-optional') return undefined;
    throw Errors.notJson();
  }
  const parsed = parseRequestJson(text, { maxDepth: route.maxJsonDepth, allowNul: route.acceptsNul });
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw Errors.badJson();
  return parsed as JsonValue;
}

/**
 * JSON from a request: text that does not parse is 400 `M_NOT_JSON`; JSON we refuse (too deep, a
 * lone surrogate, U+0000, an infinite number) is 400 `M_BAD_JSON`.
 */
function parseRequestJson(text: string, options: { maxDepth?: number | undefined; allowNul?: boolean | undefined }): unknown {
  try {
    return parseJsonInput(text, {
      ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
      ...(options.allowNul === undefined ? {} : { allowNul: options.allowNul }),
    });
  } catch (err) {
    if (err instanceof JsonInputError) throw Errors.jsonInput(err);
    throw err;
  }
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
