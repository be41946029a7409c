// The rate limiter's arithmetic, on a clock the test moves: Synapse's semantics (a bucket of
// `burst_count` draining at `per_second`; refused actions are not counted).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MatrixError } from '../../src/errors.js';
import { RateLimiter } from '../../src/handlers/kernel/rate-limit.js';

function clock(startMs = 1_000_000) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('RateLimiter', () => {
  test('a burst is allowed, the next action waits until one action has drained', () => {
    const time = clock();
    const limiter = new RateLimiter({ per_second: 0.17, burst_count: 3 }, time.now);
    for (let i = 0; i < 3; i++) assert.equal(limiter.decide('ip').allowed, true);
    const refused = limiter.decide('ip');
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, Math.ceil(1000 / 0.17));
    time.advance(refused.retryAfterMs - 10);
    assert.equal(limiter.decide('ip').allowed, false, 'not drained yet');
    time.advance(10);
    assert.equal(limiter.decide('ip').allowed, true);
    assert.equal(limiter.decide('another ip').allowed, true, 'keys are independent');
  });

  test('check throws 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After rounded up to seconds', () => {
    const time = clock();
    const limiter = new RateLimiter({ per_second: 0.5, burst_count: 1 }, time.now);
    limiter.check('user');
    time.advance(300);
    assert.throws(
      () => limiter.check('user'),
      (err: unknown) =>
        err instanceof MatrixError &&
        err.status === 429 &&
        err.errcode === 'M_LIMIT_EXCEEDED' &&
        err.extra.retry_after_ms === 1700 &&
        err.headers['Retry-After'] === '2',
    );
  });

  test('update: false checks without counting; refused actions are not counted; record counts regardless', () => {
    const time = clock();
    const limiter = new RateLimiter({ per_second: 1, burst_count: 2 }, time.now);
    for (let i = 0; i < 5; i++) assert.equal(limiter.decide('k', { update: false }).allowed, true);
    limiter.check('k');
    limiter.check('k');
    for (let i = 0; i < 5; i++) assert.equal(limiter.decide('k').allowed, false);
    time.advance(1000);
    assert.equal(limiter.decide('k').allowed, true, 'the refused attempts did not push the wait further out');

    limiter.record('failures', 5);
    assert.equal(limiter.decide('failures', { update: false }).allowed, false);
    time.advance(4000);
    assert.equal(limiter.decide('failures', { update: false }).allowed, true);
  });

  test('a zero rate never refills and announces no wait', () => {
    const limiter = new RateLimiter({ per_second: 0, burst_count: 1 }, clock().now);
    limiter.check('k');
    assert.throws(
      () => limiter.check('k'),
      (err: unknown) =>
        err instanceof MatrixError &&
        err.status === 429 &&
        err.extra.retry_after_ms === undefined &&
        err.headers['Retry-After'] === undefined,
    );
  });
});
