// Limits on inbound federation requests per origin server (`rc_federation`), with Synapse's
// semantics, so the values admins tuned for Synapse mean the same:
// - requests of an origin within the last `window_size` ms are counted; beyond `sleep_limit` of
//   them, each further request first waits `sleep_delay` ms;
// - at most `concurrent` requests of an origin are processed at once; the others wait their turn;
// - when more than `reject_limit` requests of an origin are waiting (delayed or queued), further
//   ones are refused at once with 429 `M_LIMIT_EXCEEDED`.
// The inbound federation routes call `run(origin, handler)` once the request is authenticated.
// Like every limiter here, it counts per process.

import type { FederationRateLimitConfig } from '../config/schema.js';
import { Errors } from '../errors.js';

export interface FederationRateLimiterOptions {
  readonly now?: () => number;
  /** Waits `ms` (tests pass one they control). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How often the state of origins that went quiet is dropped. */
const SWEEP_INTERVAL_MS = 60_000;

class OriginState {
  /** When the requests of the current window arrived. */
  requestTimes: number[] = [];
  sleeping = 0;
  processing = 0;
  /** Requests ready to run, waiting for a free slot, in arrival order. */
  readonly queue: Array<() => void> = [];

  isIdle(): boolean {
    return this.requestTimes.length === 0 && this.sleeping === 0 && this.processing === 0 && this.queue.length === 0;
  }
}

export class FederationRateLimiter {
  private readonly origins = new Map<string, OriginState>();
  private lastSweep = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    readonly settings: FederationRateLimitConfig,
    options: FederationRateLimiterOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Runs `handle` when the origin's limits allow it; throws 429 when too many of its requests wait. */
  async run<T>(origin: string, handle: () => Promise<T>): Promise<T> {
    const release = await this.acquire(origin);
    try {
      return await handle();
    } finally {
      release();
    }
  }

  /**
   * Waits until a request of `origin` may be processed and returns the function to call when it
   * is done (exactly once). Throws 429 `M_LIMIT_EXCEEDED` when it is refused.
   */
  async acquire(origin: string): Promise<() => void> {
    const { window_size: windowMs, sleep_limit: sleepLimit, sleep_delay: sleepDelayMs, reject_limit: rejectLimit } = this.settings;
    const now = this.now();
    if (now - this.lastSweep > SWEEP_INTERVAL_MS) {
      this.lastSweep = now;
      for (const [name, idle] of this.origins) this.forgetIfIdle(name, idle);
    }
    const state = this.stateOf(origin);
    state.requestTimes = state.requestTimes.filter((t) => now - t < windowMs);
    if (state.queue.length + state.sleeping > rejectLimit) {
      this.forgetIfIdle(origin, state);
      throw Errors.limitExceeded(Math.floor(windowMs / Math.max(1, sleepLimit)));
    }
    state.requestTimes.push(now);
    if (state.requestTimes.length > sleepLimit) {
      state.sleeping++;
      try {
        await this.sleep(sleepDelayMs);
      } finally {
        state.sleeping--;
      }
    }
    if (state.processing >= this.settings.concurrent) {
      // The slot is handed over by the request that frees it.
      await new Promise<void>((resolve) => state.queue.push(resolve));
    } else {
      state.processing++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = state.queue.shift();
      if (next) next();
      else {
        state.processing--;
        this.forgetIfIdle(origin, state);
      }
    };
  }

  private stateOf(origin: string): OriginState {
    let state = this.origins.get(origin);
    if (!state) {
      state = new OriginState();
      this.origins.set(origin, state);
    }
    return state;
  }

  /** Drops an origin's state once nothing of it is left in the window, so memory follows activity. */
  private forgetIfIdle(origin: string, state: OriginState): void {
    const now = this.now();
    state.requestTimes = state.requestTimes.filter((t) => now - t < this.settings.window_size);
    if (state.isIdle() && this.origins.get(origin) === state) this.origins.delete(origin);
  }

  /** Requests of `origin` waiting (delayed or queued) and being processed; for tests and metrics. */
  stats(origin: string): { waiting: number; processing: number; inWindow: number } {
    const state = this.origins.get(origin);
    return {
      waiting: (state?.queue.length ?? 0) + (state?.sleeping ?? 0),
      processing: state?.processing ?? 0,
      inWindow: state?.requestTimes.length ?? 0,
    };
  }
}
