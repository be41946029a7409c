// What a route is. Every endpoint of every API module is declared with `defineRoute`, and the list
// of all of them (src/api/registry.ts) is the single source of truth that the router, the
// `myelin routes` listing and the reverse-proxy config generator read.

import type { IncomingHttpHeaders } from 'node:http';
import type { ResourceName } from '../config/schema.js';
import type { Requester } from '../handlers/requester.js';
import type { StreamName } from '../streams/streams.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'DELETE'];

/**
 * Which processes may serve a route:
 * - `any`: main or any generic worker;
 * - `main`: only the main process (e.g. state kept in its memory, such as registration nonces);
 * - `media`: a media_repository worker, or main when there is none;
 * - `writer:<stream>`: the instance that writes that stream.
 */
export type ServedBy = 'any' | 'main' | 'media' | `writer:${StreamName}`;

/**
 * How requests stick to one process when several may serve a route: `user` keeps a user's
 * requests together (per-process sync caches and notifier waits), `room` keeps a room's requests
 * together (pagination), `none` spreads them freely.
 */
export type Stickiness = 'none' | 'user' | 'room';

export type AuthRequirement = 'none' | 'user' | 'optional';

/**
 * What the body is: `none` ignores it, `json` requires a JSON object, `json-optional` accepts an
 * empty body as `{}`, `raw` hands over the bytes (media uploads).
 */
export type BodyKind = 'none' | 'json' | 'json-optional' | 'raw';

export interface RouteRequest {
  readonly method: HttpMethod;
  readonly path: string;
  /** Path parameters, already percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON object (`json` bodies), the bytes (`raw`), or undefined. */
  readonly body: unknown;
  /** The client's address (from X-Forwarded-For when the listener trusts it). */
  readonly clientIp: string;
  /** Aborted when the process is shutting down, so long-polls can end early. */
  readonly signal: AbortSignal;
  /** The authenticated user, for routes with `auth: 'user'` (always set) or `'optional'`. */
  readonly requester?: Requester;
}

/** The requester of a route declared with `auth: 'user'`. */
export function requesterOf(request: RouteRequest): Requester {
  if (!request.requester) throw new Error(`route ${request.path} reached without authentication`);
  return request.requester;
}

export interface RouteResponse {
  status?: number;
  /** JSON-serialisable body, or a string/Buffer sent as-is with `contentType`. */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface RouteDefinition<Services = unknown> {
  /** A stable name, e.g. `client.versions`. */
  readonly name: string;
  readonly method: HttpMethod;
  /** Path templates with `{param}` placeholders; several for r0/v3 aliases. */
  readonly paths: readonly string[];
  readonly resource: ResourceName;
  readonly servedBy: ServedBy;
  readonly sticky: Stickiness;
  readonly auth: AuthRequirement;
  readonly body: BodyKind;
  /** Largest accepted body in bytes; defaults to the JSON request limit. */
  readonly maxBodyBytes?: number;
  /** Deepest nesting accepted in a JSON body; defaults to `MAX_JSON_DEPTH`. */
  readonly maxJsonDepth?: number;
  /**
   * Whether strings in the JSON body may contain U+0000. By default they may not (400
   * `M_BAD_JSON`): PostgreSQL text columns cannot hold it, so a NUL reaching one would fail there
   * and not on SQLite. Routes whose body is kept only as JSON text, where it is the escape
   * `\u0000`, accept it: event content and account data, which the spec lets hold any string.
   */
  readonly acceptsNul?: boolean;
  readonly handle: (request: RouteRequest, services: Services) => Promise<RouteResponse> | RouteResponse;
}

type RouteOptions<S> = Omit<RouteDefinition<S>, 'paths' | 'servedBy' | 'sticky' | 'auth' | 'body'> & {
  paths: string | readonly string[];
  servedBy?: ServedBy;
  sticky?: Stickiness;
  auth?: AuthRequirement;
  body?: BodyKind;
};

export function defineRoute<S>(options: RouteOptions<S>): RouteDefinition<S> {
  return {
    servedBy: 'any',
    sticky: 'none',
    auth: 'none',
    body: options.method === 'GET' || options.method === 'DELETE' ? 'none' : 'json',
    ...options,
    paths: typeof options.paths === 'string' ? [options.paths] : options.paths,
  };
}

/** `/_matrix/client/{v}/x` for each of the client API's version prefixes a route is served on. */
export function clientPaths(suffix: string, versions: readonly string[] = ['v3', 'r0']): string[] {
  return versions.map((v) => `/_matrix/client/${v}${suffix}`);
}
