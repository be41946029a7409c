// Requests to other homeservers (spec: server-server API §Request Authentication, §Resolving
// server names, §TLS).
//
// Each request: `federation_domain_whitelist` checked; the destination resolved by discovery; a
// connection from the destination's pool (one undici Pool per destination, whose connections are
// opened by `FederationConnector`: every resolved address checked against the IP policy, TLS with
// the planned SNI and certificate name); the `Host` header the plan gives; the `X-Matrix` header
// signed with our key over exactly the target sent; the answer read up to a size bound and parsed
// with the hardened JSON parser. Failures are typed (errors.ts) for the callers' retry decisions.

import { Pool } from 'undici';
import type { Logger } from 'pino';
import { JsonInputError, parseJsonInput, isJsonObject, type JsonValue } from '../core/json.js';
import type { FederationTarget } from '../core/server-names.js';
import type { SigningKey } from '../core/signing.js';
import { signRequest } from '../core/x-matrix.js';
import type { FederationConnector } from './connector.js';
import type { ServerDiscovery } from './discovery.js';
import {
  FederationDeniedError,
  FederationHttpError,
  FederationInvalidResponseError,
  FederationRequestError,
  FederationUnreachableError,
} from './errors.js';
import { BodyTooLargeError, readBounded, undiciConnect } from './http.js';
import { isFederationAllowed, type FederationSettings } from './settings.js';

export type FederationMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export type QueryValue = string | number | boolean;

export interface FederationRequestOptions {
  readonly method: FederationMethod;
  /** The path from `/_matrix/...`, with path parameters already percent-encoded. */
  readonly path: string;
  /** Query parameters; an array repeats the parameter. */
  readonly query?: Readonly<Record<string, QueryValue | readonly QueryValue[] | undefined>>;
  /** A JSON body (PUT/POST). Must be canonical-JSON-able: it is signed. */
  readonly body?: JsonValue;
  /** The whole request, connecting included (default 60 s). */
  readonly timeoutMs?: number;
  /** Largest answer read (default 100 MiB, as Synapse). */
  readonly maxResponseBytes?: number;
  /** Whether strings in the answer may hold U+0000 (default false; events may, see core/json.ts). */
  readonly allowNul?: boolean;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 100 * 1024 * 1024;
/** Connections kept per destination. */
const CONNECTIONS_PER_DESTINATION = 8;

export interface FederationClientOptions {
  readonly settings: Pick<FederationSettings, 'serverName' | 'domainWhitelist'>;
  readonly signingKey: SigningKey;
  readonly discovery: ServerDiscovery;
  readonly connector: FederationConnector;
  readonly log: Logger;
}

/** The request target as sent and signed: the path, then the query percent-encoded. */
export function requestTarget(path: string, query: FederationRequestOptions['query']): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(one))}`);
  }
  return parts.length === 0 ? path : `${path}?${parts.join('&')}`;
}

/** `promise`, or a rejection with the signal's reason once it is aborted (the work itself goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export class FederationClient {
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  constructor(private readonly options: FederationClientOptions) {}

  /**
   * Sends a signed request to `destination` and returns the parsed JSON answer. Throws a
   * `FederationRequestError`: `FederationDeniedError` (not allowed; nothing was sent),
   * `FederationUnreachableError`, `FederationHttpError` (a non-2xx answer, with its Matrix error),
   * `FederationInvalidResponseError` (not JSON, too large).
   */
  async request(destination: string, request: FederationRequestOptions): Promise<JsonValue> {
    const { log, settings } = this.options;
    if (this.closed) throw new FederationUnreachableError(destination, 'connection-lost', 'the federation client is closed');
    if (!isFederationAllowed(settings, destination)) throw new FederationDeniedError(destination);
    const started = Date.now();
    const uri = requestTarget(request.path, request.query);
    // One deadline for the whole request: discovery, connecting, sending and reading.
    const deadline = AbortSignal.timeout(request.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    try {
      const target = await untilAborted(this.options.discovery.resolve(destination), deadline);
      const result = await this.send(destination, target, uri, request, deadline);
      log.debug({ destination, method: request.method, path: request.path, ms: Date.now() - started }, 'federation request done');
      return result;
    } catch (err) {
      const failure = this.classify(destination, err);
      const context = { destination, method: request.method, path: request.path, ms: Date.now() - started, kind: failure.kind };
      if (failure instanceof FederationHttpError && failure.status < 500)
        log.info(
          { ...context, status: failure.status, errcode: failure.errcode },
          `federation request to ${destination} failed: ${failure.message}`,
        );
      else log.warn(context, `federation request to ${destination} failed: ${failure.message}`);
      throw failure;
    }
  }

  private async send(
    destination: string,
    target: FederationTarget,
    uri: string,
    request: FederationRequestOptions,
    deadline: AbortSignal,
  ): Promise<JsonValue> {
    const { settings, signingKey } = this.options;
    const authorization = signRequest(
      {
        method: request.method,
        uri,
        origin: settings.serverName,
        destination,
        ...(request.body === undefined ? {} : { content: request.body }),
      },
      signingKey,
    );
    const timeoutMs = request.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const headers: Record<string, string> = { host: target.hostHeader, authorization, accept: 'application/json' };
    let body: string | undefined;
    if (request.body !== undefined) {
      body = JSON.stringify(request.body);
      headers['content-type'] = 'application/json';
    }
    const response = await this.poolFor(destination).request({
      method: request.method,
      path: uri,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: deadline,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    let text: string;
    try {
      text = (await readBounded(response.body, request.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES)).toString('utf8');
    } catch (err) {
      if (err instanceof BodyTooLargeError)
        throw new FederationInvalidResponseError(destination, `the answer of ${destination} is larger than ${err.limit} bytes`);
      throw err;
    }
    let parsed: JsonValue | undefined;
    let parseError: unknown;
    try {
      parsed = parseJsonInput(text, { allowNul: request.allowNul ?? false });
    } catch (err) {
      parseError = err;
    }
    if (response.statusCode < 200 || response.statusCode >= 300) {
      const errcode = isJsonObject(parsed) && typeof parsed.errcode === 'string' ? parsed.errcode : undefined;
      const errorText = isJsonObject(parsed) && typeof parsed.error === 'string' ? parsed.error : undefined;
      throw new FederationHttpError(destination, response.statusCode, errcode, errorText, parsed);
    }
    if (parsed === undefined) {
      const reason = parseError instanceof JsonInputError ? parseError.message : 'not JSON';
      throw new FederationInvalidResponseError(destination, `the answer of ${destination} is not usable JSON: ${reason}`, {
        cause: parseError,
      });
    }
    return parsed;
  }

  private poolFor(destination: string): Pool {
    let pool = this.pools.get(destination);
    if (!pool) {
      // undici needs an origin; the connection itself always goes where discovery says.
      pool = new Pool(`https://${destination}`, {
        connections: CONNECTIONS_PER_DESTINATION,
        connect: undiciConnect(this.options.connector, destination, () => this.options.discovery.resolve(destination)),
      });
      this.pools.set(destination, pool);
    }
    return pool;
  }

  private classify(destination: string, err: unknown): FederationRequestError {
    if (err instanceof FederationRequestError) return err;
    const name = (err as Error)?.name;
    const code = (err as NodeJS.ErrnoException)?.code;
    if (
      name === 'TimeoutError' ||
      name === 'AbortError' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT'
    ) {
      return new FederationUnreachableError(destination, 'timeout', `the request to ${destination} timed out`, { cause: err });
    }
    return new FederationUnreachableError(
      destination,
      'connection-lost',
      `the connection to ${destination} failed: ${code ?? (err as Error)?.message ?? String(err)}`,
      {
        cause: err,
      },
    );
  }

  /** Closes every connection; requests after this fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)));
  }
}
