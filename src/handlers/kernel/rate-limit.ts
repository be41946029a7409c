// Rate limiting (S:content/client-server-api/_index.md §Rate limiting) with Synapse's semantics
// (`Syn:synapse/api/ratelimiting.py`), so that the `rc_*` settings admins tuned for Synapse mean
// the same here.
//
// Each key (a user id, an IP address) has a bucket that holds at most `burst_count` actions and
// drains at `per_second`. An action is allowed when the bucket has room for it; refused actions
// are not counted. Buckets live in process memory: in worker mode each process limits the requests
// it serves, as Synapse's workers do.

import { Errors } from '../../errors.js';

export interface RateLimitSettings {
  readonly per_second: number;
  readonly burst_count: number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** How long until one more action would be allowed (0 when allowed now; -1 if never). */
  readonly retryAfterMs: number;
}

export interface RateLimitCheck {
  /** Count this check as an action when it is allowed (default true). */
  readonly update?: boolean;
  /** How many actions at once (default 1). */
  readonly actions?: number;
}

interface Bucket {
  /** Actions counted since `startMs`, before draining. */
  count: number;
  startMs: number;
}

/** Drained buckets are dropped at most this often, so memory follows the active keys. */
const PRUNE_INTERVAL_MS = 60_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastPruneMs: number;

  constructor(
    readonly settings: RateLimitSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.lastPruneMs = now();
  }

  /**
   * Counts an action for `key`, or throws 429 `M_LIMIT_EXCEEDED` if the bucket is full. With
   * `update: false` it only checks: used to refuse early, before work whose outcome decides
   * whether the action counts.
   */
  check(key: string, options: RateLimitCheck = {}): void {
    const decision = this.decide(key, options);
    if (!decision.allowed) throw Errors.limitExceeded(decision.retryAfterMs);
  }

  /** Like `check`, but answers instead of throwing. */
  decide(key: string, options: RateLimitCheck = {}): RateLimitDecision {
    const nowMs = this.now();
    this.pruneIfDue(nowMs);
    const actions = options.actions ?? 1;
    const { per_second: rate, burst_count: burst } = this.settings;
    const bucket = this.drained(key, nowMs);
    const performed = this.performed(bucket, nowMs);
    // Written as `performed > burst - actions` rather than `performed + actions > burst` so a
    // drained count with a long fraction is never rounded up past the limit.
    const allowed = !(performed > burst - actions);
    const count = allowed ? bucket.count + actions : bucket.count;
    if (allowed && options.update !== false) this.buckets.set(key, { count, startMs: bucket.startMs });
    return { allowed, retryAfterMs: allowed ? 0 : retryAfter(bucket.startMs, count, burst, rate, nowMs) };
  }

  /** Counts actions that happened whatever the limit says (e.g. a failed login attempt). */
  record(key: string, actions = 1): void {
    const bucket = this.drained(key, this.now());
    this.buckets.set(key, { count: bucket.count + actions, startMs: bucket.startMs });
  }

  /** The bucket of `key`, restarted once it has drained completely. */
  private drained(key: string, nowMs: number): Bucket {
    const bucket = this.buckets.get(key);
    return bucket && this.performed(bucket, nowMs) > 0 ? bucket : { count: 0, startMs: nowMs };
  }

  /** The actions still in the bucket at `nowMs`. */
  private performed(bucket: Bucket, nowMs: number): number {
    return Math.max(0, bucket.count - ((nowMs - bucket.startMs) / 1000) * this.settings.per_second);
  }

  private pruneIfDue(nowMs: number): void {
    if (nowMs - this.lastPruneMs < PRUNE_INTERVAL_MS) return;
    this.lastPruneMs = nowMs;
    for (const [key, bucket] of this.buckets) if (this.performed(bucket, nowMs) === 0) this.buckets.delete(key);
  }
}

function retryAfter(startMs: number, count: number, burst: number, rate: number, nowMs: number): number {
  if (rate <= 0) return -1;
  // The moment the bucket has drained enough for one more action.
  const allowedAtMs = startMs + ((count - burst + 1) / rate) * 1000;
  return Math.max(0, Math.ceil(allowedAtMs - nowMs));
}

export interface RateLimitConfig {
  readonly rc_message: RateLimitSettings;
  readonly rc_registration: RateLimitSettings;
  readonly rc_login: {
    readonly address: RateLimitSettings;
    readonly account: RateLimitSettings;
    readonly failed_attempts: RateLimitSettings;
  };
  readonly rc_joins: { readonly local: RateLimitSettings; readonly remote: RateLimitSettings };
}

/**
 * Every limiter of the process, built from the `rc_*` settings. Handlers call `check(key)` on the
 * one that fits; message sending goes through `checkMessage` so that admins are exempt.
 */
export class RateLimits {
  /** Per user id. Use `checkMessage`, which exempts server admins. */
  readonly message: RateLimiter;
  /** Per client IP: completed registrations (checked without counting at the start of /register). */
  readonly registration: RateLimiter;
  /** Per client IP: login requests. */
  readonly loginAddress: RateLimiter;
  /** Per lower-cased user id: successful logins. */
  readonly loginAccount: RateLimiter;
  /** Per lower-cased user id: failed logins and failed re-authentication (UIA). */
  readonly loginFailedAttempts: RateLimiter;
  /** Per user id: joins to rooms this server is in. */
  readonly joinsLocal: RateLimiter;
  /** Per user id: joins over federation. */
  readonly joinsRemote: RateLimiter;

  constructor(
    config: RateLimitConfig,
    private readonly isAdmin: (userId: string) => Promise<boolean>,
    now: () => number = Date.now,
  ) {
    this.message = new RateLimiter(config.rc_message, now);
    this.registration = new RateLimiter(config.rc_registration, now);
    this.loginAddress = new RateLimiter(config.rc_login.address, now);
    this.loginAccount = new RateLimiter(config.rc_login.account, now);
    this.loginFailedAttempts = new RateLimiter(config.rc_login.failed_attempts, now);
    this.joinsLocal = new RateLimiter(config.rc_joins.local, now);
    this.joinsRemote = new RateLimiter(config.rc_joins.remote, now);
  }

  /**
   * Counts a message from `userId`, or throws 429. Server admins are never limited; their status
   * is looked up only when the limit is reached, so ordinary sends cost no database read.
   */
  async checkMessage(userId: string, options: RateLimitCheck = {}): Promise<void> {
    const decision = this.message.decide(userId, options);
    if (decision.allowed) return;
    if (await this.isAdmin(userId)) return;
    throw Errors.limitExceeded(decision.retryAfterMs);
  }
}
