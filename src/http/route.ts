// What a route is. Every endpoint of every API module is declared with `defineRoute` (see
// `routeDefiner`), and the list of all of them (src/api/registry.ts) is the single source of
// truth that the dispatcher, the router, the `myelin routes` listing and the reverse-proxy config
// generator read.
//
// A declaration is typed from what it says: the path templates give the handler's `params` (one
// `string` per `{name}` every template has), the auth kind gives its `requester` (or `origin`),
// and the body schema gives its `body`, already checked.

import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { ResourceName } from '../config/schema.js';
import type { Requester } from '../handlers/kernel/requester.js';
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

/**
 * Who may call a route:
 * - `none`: anyone; no access token is read;
 * - `user`: a signed-in user with a full account (an access token; guests get 403
 *   `M_GUEST_ACCESS_FORBIDDEN`);
 * - `guest`: a signed-in user, guest accounts included;
 * - `server`: another homeserver, by a request signed with `X-Matrix` (spec: server-server API,
 *   §Request Authentication), checked by the dispatcher's `authenticateServer`.
 */
export type AuthKind = 'none' | 'user' | 'guest' | 'server';

/**
 * What the body is, as the dispatcher reads it: `none` ignores it, `json` requires a JSON object,
 * `json-optional` accepts an empty body as `{}`, `raw` hands over the bytes (media uploads).
 * Derived from the declaration's `body` (see `BodyDeclaration`).
 */
export type BodyKind = 'none' | 'json' | 'json-optional' | 'raw';

/** A zod schema for a JSON body: its output is what the handler gets. */
type BodySchema = z.ZodType<object>;

/**
 * A declaration's `body`: `'none'`, `'raw'`, or a zod schema for a JSON object. A schema that
 * accepts an absent body (`.default({})`) makes the body optional: older clients send none.
 */
type BodyDeclaration = 'none' | 'raw' | BodySchema;

type ParamNames<P extends string> = P extends `${string}{${infer Name}}${infer Rest}` ? Name | ParamNames<Rest> : never;
type ParamsOfEach<P extends string> = P extends string ? { readonly [K in ParamNames<P>]: string } : never;

/**
 * The path parameters of a route with templates `P`: the names every template has (the keys of a
 * union of object types are those common to all of them), each a percent-decoded string.
 */
type PathParams<P extends string> = { readonly [K in keyof ParamsOfEach<P>]: string };

/** What the handler gets as `body`. */
type BodyOf<B extends BodyDeclaration> = B extends 'raw' ? Buffer : B extends BodySchema ? z.output<B> : undefined;

/** Who is calling, by auth kind. */
type CallerOf<A extends AuthKind> = A extends 'user' | 'guest'
  ? { readonly requester: Requester }
  : A extends 'server'
    ? { readonly origin: string }
    : unknown;

interface RequestBase<Params, Body> {
  readonly method: HttpMethod;
  readonly path: string;
  /** Path parameters, already percent-decoded and checked (`src/http/path-params.ts`). */
  readonly params: Params;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The body as the route's schema parsed it, the bytes (`raw`), or undefined. */
  readonly body: Body;
  /** The client's address (from X-Forwarded-For when the listener trusts it). */
  readonly clientIp: string;
  /** Aborted when the process is shutting down, so long-polls can end early. */
  readonly signal: AbortSignal;
}

/** The request a handler gets: typed by the route's path templates, auth kind and body. */
type RouteRequest<Params = Readonly<Record<string, string>>, A extends AuthKind = AuthKind, Body = unknown> = RequestBase<Params, Body> &
  CallerOf<A>;

/** A request as the dispatcher builds it, before a route's types are known. */
export interface AnyRouteRequest extends RequestBase<Readonly<Record<string, string>>, unknown> {
  readonly requester?: Requester;
  readonly origin?: string;
}

export interface RouteResponse {
  status?: number;
  /** JSON-serialisable body, or a string/Buffer sent as-is with `contentType`. */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/** A declared route, as the dispatcher, the router and the listings read it. */
export interface RouteDefinition<Services = unknown> {
  /** A stable name, e.g. `client.versions`. */
  readonly name: string;
  readonly method: HttpMethod;
  /** Path templates with `{param}` placeholders; several for r0/v3 aliases. */
  readonly paths: readonly string[];
  readonly resource: ResourceName;
  readonly servedBy: ServedBy;
  readonly sticky: Stickiness;
  readonly auth: AuthKind;
  readonly body: BodyKind;
  /** The schema of a `json` / `json-optional` body. */
  readonly bodySchema?: BodySchema;
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
  readonly handle: (request: AnyRouteRequest, services: Services) => Promise<RouteResponse> | RouteResponse;
}

type MethodAndBody<M extends HttpMethod, B extends BodyDeclaration> = M extends 'POST' | 'PUT'
  ? {
      readonly method: M;
      /** Required for POST and PUT: the JSON body's schema, `'raw'`, or `'none'`. */
      readonly body: B;
    }
  : { readonly method: M; readonly body?: B };

/** What a route declaration says; `defineRoute` fills in the defaults. */
type RouteDeclaration<S, P extends string, M extends HttpMethod, A extends AuthKind, B extends BodyDeclaration> = MethodAndBody<M, B> & {
  readonly name: string;
  readonly paths: P | readonly P[];
  readonly resource: ResourceName;
  /** Default `any`. */
  readonly servedBy?: ServedBy;
  /** Default `none`. */
  readonly sticky?: Stickiness;
  /** Default `none`. */
  readonly auth?: A;
  readonly maxBodyBytes?: number;
  readonly maxJsonDepth?: number;
  readonly acceptsNul?: boolean;
  readonly handle: (request: RouteRequest<PathParams<P>, A, BodyOf<B>>, services: S) => Promise<RouteResponse> | RouteResponse;
};

/**
 * The `defineRoute` of an API whose handlers receive `S` (e.g. `src/api/define-route.ts`).
 * Example:
 *
 *     defineRoute({
 *       name: 'client.rooms.redact',
 *       method: 'PUT',
 *       paths: clientPaths('/rooms/{roomId}/redact/{eventId}/{txnId}'),
 *       resource: 'client',
 *       auth: 'guest',
 *       body: z.object({ reason: z.string().optional() }),
 *       handle: async ({ params, requester, body }, services) => ...,  // params.roomId: string
 *     })
 */
export function routeDefiner<S>() {
  return function defineRoute<
    const P extends string,
    M extends HttpMethod,
    A extends AuthKind = 'none',
    B extends BodyDeclaration = 'none',
  >(declaration: RouteDeclaration<S, P, M, A, B>): RouteDefinition<S> {
    const body: BodyDeclaration = declaration.body ?? 'none';
    const paths: readonly string[] = typeof declaration.paths === 'string' ? [declaration.paths] : declaration.paths;
    return {
      name: declaration.name,
      method: declaration.method,
      paths,
      resource: declaration.resource,
      servedBy: declaration.servedBy ?? 'any',
      sticky: declaration.sticky ?? 'none',
      auth: declaration.auth ?? 'none',
      body: typeof body === 'string' ? body : body.safeParse(undefined).success ? 'json-optional' : 'json',
      ...(typeof body === 'string' ? {} : { bodySchema: body }),
      ...(declaration.maxBodyBytes === undefined ? {} : { maxBodyBytes: declaration.maxBodyBytes }),
      ...(declaration.maxJsonDepth === undefined ? {} : { maxJsonDepth: declaration.maxJsonDepth }),
      ...(declaration.acceptsNul === undefined ? {} : { acceptsNul: declaration.acceptsNul }),
      // The dispatcher builds the request this declaration's types promise: params from the
      // matched template, the caller its auth kind asks for, the body its schema parsed.
      handle: declaration.handle as unknown as RouteDefinition<S>['handle'],
    };
  };
}

/** `/_matrix/client/{v}/x` for each of the client API's version prefixes a route is served on. */
export function clientPaths<const Suffix extends string, const V extends string = 'v3' | 'r0'>(
  suffix: Suffix,
  versions: readonly V[] = ['v3', 'r0'] as unknown as readonly V[],
): Array<`/_matrix/client/${V}${Suffix}`> {
  return versions.map((v) => `/_matrix/client/${v}${suffix}` as const);
}
