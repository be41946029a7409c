// Replication HTTP: how a process calls a stream's writer when that writer lives in another process
// (`instance_map` says where each instance's replication listener is: a UNIX socket or host+port).
//
// Wire format, one route on the `replication` resource:
//   POST /_synapse/replication/{name}/{txnId}
//   Authorization: Bearer <worker_replication_secret>      (when the secret is configured)
//   {"args": <JSON>, "positions": {stream: {instance: position}}}     the caller's positions
// answered by
//   200 {"result": <JSON, absent for none>, "positions": {stream: {instance: position}}}
// or by the handler's Matrix error: its status, `{errcode, error, ...extra}`, its headers, and
// `X-Myelin-Error-Headers` naming those headers so the caller can rebuild the same error.
//
// The txn id makes calls idempotent: the callee remembers each call's outcome for 30 minutes, and a
// duplicate (a retry, or a copy arriving while the first still runs) gets that outcome instead of
// running again. That is what lets the caller retry freely while the writer is down or restarting,
// so no accepted write is lost and none is done twice. The caller retries only failures that pass:
// no connection (refused, reset, no socket yet), a proxy's 502/504, and 503 (the callee's database
// or a writer further on is unavailable for a while). Anything else, a 500 from a bug included, is
// the call's answer: retrying it would only repeat the failure until the deadline. Positions travel both ways so that a write
// made through one process is visible to the caller's next read (read-your-writes).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { isJsonObject, type JsonObject, type JsonValue } from '../core/json.js';
import { Errors, MatrixError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { LruCache } from '../util/lru.js';

/** stream → writer instance → the position up to which that writer's rows are complete. */
export type ReplicationPositions = Record<string, Record<string, number>>;
/** The positions the caller had reached when it made the call. */
export type CallerPositions = ReplicationPositions;

export interface RpcContext {
  readonly positions: CallerPositions;
}

/** Runs one call. `undefined` (a void method) travels as an absent `result`. */
export type RpcHandler = (args: JsonValue, context: RpcContext) => Promise<JsonValue | undefined | void>;

export const RPC_ROUTE_PATH = '/_synapse/replication/{name}/{txnId}';
/** Names the response headers that belong to the error, so the caller re-throws it with them. */
export const ERROR_HEADERS_HEADER = 'x-myelin-error-headers';
const MAX_TXN_ID_LENGTH = 255;

export function rpcPath(name: string, txnId: string): string {
  return `/_synapse/replication/${encodeURIComponent(name)}/${encodeURIComponent(txnId)}`;
}

/** A fresh transaction id: one per logical call, shared by all of that call's attempts. */
export function newTxnId(): string {
  return randomBytes(16).toString('base64url');
}

// ---------------------------------------------------------------------------------------------
// Server

export interface RpcServerOptions {
  /** `worker_replication_secret`; without one every request is accepted, as in Synapse. */
  secret: string | undefined;
  /** This process's completed position of each stream it writes, returned with every answer. */
  currentPositions(): ReplicationPositions;
  log?: Logger;
  now?: () => number;
  /** How long an outcome is remembered for retries (default 30 minutes, as Synapse). */
  outcomeTtlMs?: number;
  /**
   * How many outcomes are remembered. Retries come within the caller's deadline (60 s by default),
   * so this must cover a minute of calls at the writer's peak rate.
   */
  maxOutcomes?: number;
}

/** What the route hands over from the HTTP request. */
export interface RpcHttpRequest {
  name: string;
  txnId: string;
  authorization: string | undefined;
  /** The parsed JSON body. */
  body: unknown;
}

export interface RpcHttpResponse {
  status: number;
  body: JsonObject;
  headers: Record<string, string>;
}

type Outcome = { ok: true; result: JsonValue | undefined } | { ok: false; error: MatrixError };

export class RpcServer {
  private readonly handlers = new Map<string, RpcHandler>();
  /** Calls still running, so a duplicate waits for the first instead of running again. */
  private readonly running = new Map<string, Promise<Outcome>>();
  private readonly outcomes: LruCache<string, { outcome: Outcome; expiresAt: number }>;
  private readonly secretDigest: Buffer | undefined;
  private readonly now: () => number;
  private readonly ttlMs: number;

  constructor(private readonly options: RpcServerOptions) {
    this.secretDigest = options.secret === undefined ? undefined : sha256(options.secret);
    this.now = options.now ?? Date.now;
    this.ttlMs = options.outcomeTtlMs ?? 30 * 60_000;
    this.outcomes = new LruCache(options.maxOutcomes ?? 100_000);
  }

  register(name: string, handler: RpcHandler): void {
    if (this.handlers.has(name)) throw new Error(`replication call ${name} is registered twice`);
    this.handlers.set(name, handler);
  }

  /**
   * Answers one HTTP request. Matrix errors (including refusals) become error responses; anything
   * else is re-thrown, for the HTTP layer to answer: a passing database fault with a 503 that the
   * caller retries, a bug with a 500 that it does not.
   */
  async serve(request: RpcHttpRequest): Promise<RpcHttpResponse> {
    let outcome: Outcome;
    try {
      this.authorize(request.authorization);
      const handler = this.handlers.get(request.name);
      if (!handler) throw Errors.unrecognized(404, `Unknown replication call ${request.name}`);
      if (request.txnId.length > MAX_TXN_ID_LENGTH) throw Errors.invalidParam('Transaction id too long');
      const { args, positions } = parseCallBody(request.body);
      outcome = await this.runOnce(`${request.name}\u0000${request.txnId}`, () => this.invoke(handler, args, positions));
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      outcome = { ok: false, error: err };
    }
    if (!outcome.ok) return encodeError(outcome.error);
    // Positions are read now, not when the outcome was first reached: they only grow, so a
    // retried call still learns a position that covers its write.
    const body: JsonObject = { positions: this.options.currentPositions() };
    if (outcome.result !== undefined) body.result = outcome.result;
    return { status: 200, body, headers: {} };
  }

  private authorize(header: string | undefined): void {
    if (this.secretDigest === undefined) return;
    if (header === undefined) throw Errors.missingToken('Missing replication secret');
    // The secret is everything after the scheme: a configured secret may contain spaces.
    const match = /^Bearer (.+)$/.exec(header);
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    if (!match || !timingSafeEqual(sha256(match[1]!), this.secretDigest)) {
      throw Errors.forbidden('Invalid replication secret');
    }
  }

  private runOnce(key: string, run: () => Promise<Outcome>): Promise<Outcome> {
    const remembered = this.outcomes.get(key);
    if (remembered && remembered.expiresAt > this.now()) return Promise.resolve(remembered.outcome);
    const inFlight = this.running.get(key);
    if (inFlight) return inFlight;
    const started = run().then(
      (outcome) => {
        this.running.delete(key);
        this.outcomes.set(key, { outcome, expiresAt: this.now() + this.ttlMs });
        return outcome;
      },
      (err: unknown) => {
        this.running.delete(key);
        throw err;
      },
    );
    this.running.set(key, started);
    return started;
  }

  /**
   * A client error (4xx) is the call's outcome and is remembered like a result. A server error
   * (5xx, or a bug) is not: the write may not have happened, and a retry may succeed.
   */
  private async invoke(handler: RpcHandler, args: JsonValue, positions: CallerPositions): Promise<Outcome> {
    try {
      const result = (await handler(args, { positions })) as JsonValue | undefined;
      return { ok: true, result };
    } catch (err) {
      if (err instanceof MatrixError && err.status < 500) return { ok: false, error: err };
      throw err;
    }
  }
}

function parseCallBody(body: unknown): { args: JsonValue; positions: CallerPositions } {
  if (!isJsonObject(body)) throw Errors.badJson();
  if (!('args' in body)) throw Errors.missingParam('Missing args');
  const positions = body.positions === undefined ? {} : parsePositions(body.positions);
  if (positions === undefined) throw Errors.badJson('positions must map each stream to {instance: position}');
  return { args: body.args, positions };
}

/** `{stream: {instance: non-negative integer}}`, or undefined when the value has another shape. */
function parsePositions(value: unknown): ReplicationPositions | undefined {
  if (!isJsonObject(value)) return undefined;
  const positions: ReplicationPositions = {};
  for (const [stream, byInstance] of Object.entries(value)) {
    if (!isJsonObject(byInstance)) return undefined;
    const parsed: Record<string, number> = {};
    for (const [instance, position] of Object.entries(byInstance)) {
      if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) return undefined;
      parsed[instance] = position;
    }
    positions[stream] = parsed;
  }
  return positions;
}

function encodeError(error: MatrixError): RpcHttpResponse {
  const headers: Record<string, string> = { ...error.headers };
  const names = Object.keys(error.headers);
  if (names.length > 0) headers[ERROR_HEADERS_HEADER] = names.join(', ');
  return { status: error.status, body: error.toJSON() as JsonObject, headers };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

// ---------------------------------------------------------------------------------------------
// Client

/** Where an instance's replication listener is (an `instance_map` entry). */
export interface InstanceAddress {
  path?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  tls?: boolean | undefined;
}

export interface RpcClientOptions {
  /** `instance_map`. */
  instanceMap: Readonly<Record<string, InstanceAddress>>;
  /** `worker_replication_secret`, sent with every call when set. */
  secret: string | undefined;
  /** This process's positions, sent with every attempt so the callee can wait for them. */
  callerPositions(): ReplicationPositions;
  /**
   * The callee's positions after a successful call. The call resolves only after this settles, so
   * it can wait until this process has seen the callee's writes (read-your-writes).
   */
  onCalleePositions?(instance: string, positions: ReplicationPositions): void | Promise<void>;
  log?: Logger;
  /** How long a call keeps retrying an unreachable or failing instance (default 60 s). */
  defaultDeadlineMs?: number;
  /** The first pause between attempts (default 100 ms); it doubles up to `maxRetryDelayMs` (2 s). */
  initialRetryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export interface RpcCallOptions {
  /** The call's transaction id; a fresh one when absent. Give the same one to repeat a call safely. */
  txnId?: string;
  /** How long to keep retrying, in ms from now. */
  deadlineMs?: number;
}

/** What a proxy needs of a client. */
export interface RpcCaller {
  call(instance: string, name: string, args: JsonValue, options?: RpcCallOptions): Promise<JsonValue | undefined>;
}

/**
 * Answers that say the callee (or something behind it) cannot serve for a while: worth another
 * attempt with the same txn id. 500 and the rest are permanent.
 */
const RETRYABLE_STATUSES = new Set([502, 503, 504]);

/** Connection failures that mean the instance is down or restarting: worth another attempt. */
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', // a stale socket file, or nothing on the port
  'ENOENT', // no socket file yet
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET', // the connection closed before the whole response arrived
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

interface Endpoint {
  origin: string;
  dispatcher: Dispatcher;
}

type Attempt = { done: true; result: JsonValue | undefined } | { done: false; reason: string };

export class RpcClient implements RpcCaller {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly deadlineMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: RpcClientOptions) {
    this.deadlineMs = options.defaultDeadlineMs ?? 60_000;
    this.initialDelayMs = options.initialRetryDelayMs ?? 100;
    this.maxDelayMs = options.maxRetryDelayMs ?? 2_000;
  }

  /**
   * Calls `name` on `instance`, retrying with the same txn id while the instance is unreachable or
   * answers 502/503/504, until the deadline. A Matrix error from the callee (a 500 included) is
   * re-thrown as it was thrown.
   */
  async call(instance: string, name: string, args: JsonValue, options: RpcCallOptions = {}): Promise<JsonValue | undefined> {
    const endpoint = this.endpointOf(instance);
    const txnId = options.txnId ?? newTxnId();
    const deadline = Date.now() + (options.deadlineMs ?? this.deadlineMs);
    const url = endpoint.origin + rpcPath(name, txnId);
    let delay = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(endpoint, url, instance, args, deadline);
      if (outcome.done) return outcome.result;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.options.log?.error(
          { callee: instance, call: name, txnId, attempts: attempt, reason: outcome.reason },
          'replication call gave up',
        );
        throw Errors.unavailable(`Instance ${instance} unavailable: ${outcome.reason}`);
      }
      const level = attempt === 1 ? 'warn' : 'debug';
      this.options.log?.[level](
        { callee: instance, call: name, txnId, attempt, reason: outcome.reason },
        'replication call failed; retrying',
      );
      await sleep(Math.min(delay, remaining));
      delay = Math.min(delay * 2, this.maxDelayMs);
    }
  }

  /** Closes the connections kept to other instances. */
  async close(): Promise<void> {
    const dispatchers = [...this.endpoints.values()].map((e) => e.dispatcher);
    this.endpoints.clear();
    await Promise.all(dispatchers.map((d) => d.close()));
  }

  private async attempt(endpoint: Endpoint, url: string, instance: string, args: JsonValue, deadline: number): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.secret !== undefined) headers.authorization = `Bearer ${this.options.secret}`;
    const body = JSON.stringify({ args, positions: this.options.callerPositions() });
    let status: number;
    let responseHeaders: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const response = await request(url, {
        method: 'POST',
        headers,
        body,
        dispatcher: endpoint.dispatcher,
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      });
      status = response.statusCode;
      responseHeaders = response.headers;
      text = await response.body.text();
    } catch (err) {
      const code = errorCode(err);
      if (code !== undefined && RETRYABLE_CODES.has(code)) return { done: false, reason: `${code} (${(err as Error).message})` };
      if (isTimeout(err)) return { done: false, reason: 'no answer before the deadline' };
      throw Errors.badGateway(`Failed to talk to ${instance}: ${(err as Error).message}`);
    }
    if (RETRYABLE_STATUSES.has(status)) return { done: false, reason: `HTTP ${status}${describeErrorBody(text)}` };
    const json = parseJson(text);
    if (status !== 200) throw decodeError(instance, status, json, responseHeaders);
    const positions = isJsonObject(json) ? parsePositions(json.positions) : undefined;
    if (!isJsonObject(json) || positions === undefined) {
      throw Errors.badGateway(`Unexpected answer from ${instance}`);
    }
    await this.options.onCalleePositions?.(instance, positions);
    return { done: true, result: json.result };
  }

  private endpointOf(instance: string): Endpoint {
    const known = this.endpoints.get(instance);
    if (known) return known;
    const address = this.options.instanceMap[instance];
    if (!address) throw Errors.unknown(`Instance ${instance} is not in instance_map`);
    if (address.tls) throw Errors.unknown(`Instance ${instance}: TLS in instance_map is not supported`);
    let endpoint: Endpoint;
    if (address.path !== undefined) {
      // The host part is only for the Host header; the socket decides where the request goes.
      endpoint = { origin: 'http://localhost', dispatcher: new Agent({ connect: { socketPath: address.path } }) };
    } else if (address.host !== undefined && address.port !== undefined) {
      const host = address.host.includes(':') ? `[${address.host}]` : address.host;
      endpoint = { origin: `http://${host}:${address.port}`, dispatcher: new Agent() };
    } else {
      throw Errors.unknown(`Instance ${instance} has neither path nor host and port in instance_map`);
    }
    this.endpoints.set(instance, endpoint);
    return endpoint;
  }
}

function decodeError(instance: string, status: number, json: unknown, headers: Record<string, string | string[] | undefined>): MatrixError {
  if (!isJsonObject(json) || typeof json.errcode !== 'string' || typeof json.error !== 'string') {
    return Errors.badGateway(`Unexpected HTTP ${status} from ${instance}`);
  }
  const { errcode, error, ...extra } = json;
  const errorHeaders: Record<string, string> = {};
  const named = headers[ERROR_HEADERS_HEADER];
  for (const name of (typeof named === 'string' ? named : '').split(',')) {
    const key = name.trim().toLowerCase();
    const value = headers[key];
    if (key !== '' && typeof value === 'string') errorHeaders[canonicalHeaderName(key)] = value;
  }
  return Errors.relayed(status, errcode, error, extra, errorHeaders);
}

/** `retry-after` → `Retry-After`, the spelling handlers use when they throw. */
function canonicalHeaderName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase());
}

function describeErrorBody(text: string): string {
  const json = parseJson(text);
  return isJsonObject(json) && typeof json.error === 'string' ? `: ${json.error.slice(0, 200)}` : '';
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  // undici wraps some socket errors; the system error is the cause.
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
