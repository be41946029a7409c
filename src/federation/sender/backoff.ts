// How long to wait before trying an unreachable destination again. Synapse's rule (synapse/util/
// retryutils.py) with a shorter first step: the interval starts at `destination_min_retry_interval`
// and is multiplied by `destination_retry_multiplier` (with some jitter, so destinations that
// failed together do not come back together) up to `destination_max_retry_interval`. Synapse starts
// at 10 minutes, so a server that restarts waits that long for its missed events; Myelin starts at
// 5 seconds and reaches Synapse's ceiling of a week after about seventeen failures.

export interface RetryPolicy {
  readonly minIntervalMs: number;
  readonly multiplier: number;
  readonly maxIntervalMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { minIntervalMs: 5_000, multiplier: 2, maxIntervalMs: 7 * 24 * 3_600_000 };

/**
 * The interval after a failure, given the one before it (0: the destination was up). Never
 * shorter than the previous one, never beyond the ceiling; the jitter is ×0.8–1.2.
 */
export function nextRetryInterval(previousMs: number, policy: RetryPolicy, random: () => number = Math.random): number {
  if (previousMs <= 0) return Math.min(policy.minIntervalMs, policy.maxIntervalMs);
  const jitter = 0.8 + 0.4 * random();
  const next = Math.round(previousMs * policy.multiplier * jitter);
  return Math.min(policy.maxIntervalMs, Math.max(previousMs, next, policy.minIntervalMs));
}

/** A delay for log lines: `800 ms`, `5 s`, `2 min`, `3.5 h`, `7 d`. */
export function formatDelay(ms: number): string {
  const round = (value: number) => (value >= 10 ? Math.round(value).toString() : (Math.round(value * 10) / 10).toString());
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${round(ms / 1_000)} s`;
  if (ms < 3_600_000) return `${round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${round(ms / 3_600_000)} h`;
  return `${round(ms / 86_400_000)} d`;
}
