// `rc_federation` with Synapse's semantics, on a clock and a sleep the test controls (nothing here
// depends on real time).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MatrixError } from '../../src/errors.js';
import { FederationRateLimiter } from '../../src/federation/rate-limit.js';

function harness(settings = { window_size: 1000, sleep_limit: 2, sleep_delay: 500, reject_limit: 3, concurrent: 2 }) {
  let now = 0;
  const sleepers: Array<{ ms: number; wake: () => void }> = [];
  const limiter = new FederationRateLimiter(settings, {
    now: () => now,
    sleep: (ms) => new Promise<void>((wake) => sleepers.push({ ms, wake })),
  });
  return {
    limiter,
    sleepers,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

/** Lets pending promise callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('rc_federation', () => {
  test('requests beyond sleep_limit in the window wait sleep_delay first', async () => {
    const { limiter, sleepers, advance } = harness({
      window_size: 1000,
      sleep_limit: 2,
      sleep_delay: 500,
      reject_limit: 50,
      concurrent: 10,
    });
    const releases = [await limiter.acquire('a.example'), await limiter.acquire('a.example')];
    assert.equal(sleepers.length, 0);
    let third = false;
    const thirdAcquired = limiter.acquire('a.example').then((release) => {
      third = true;
      return release;
    });
    await settle();
    assert.deepEqual(
      sleepers.map((s) => s.ms),
      [500],
    );
    assert.equal(third, false);
    sleepers.shift()!.wake();
    releases.push(await thirdAcquired);
    assert.equal(third, true);
    // Another origin has its own window.
    releases.push(await limiter.acquire('b.example'));
    assert.equal(sleepers.length, 0);
    // Once the window has passed, requests go straight through again.
    advance(1000);
    releases.push(await limiter.acquire('a.example'));
    assert.equal(sleepers.length, 0);
    for (const release of releases) release();
  });

  test('at most `concurrent` requests of an origin run at once; the others wait their turn, in order', async () => {
    const { limiter } = harness({ window_size: 1000, sleep_limit: 100, sleep_delay: 500, reject_limit: 50, concurrent: 2 });
    const order: number[] = [];
    const gates: Array<() => void> = [];
    const runs = [0, 1, 2, 3].map((i) =>
      limiter.run('a.example', async () => {
        order.push(i);
        await new Promise<void>((open) => gates.push(open));
        return i;
      }),
    );
    await settle();
    assert.deepEqual(order, [0, 1]);
    assert.deepEqual(limiter.stats('a.example'), { waiting: 2, processing: 2, inWindow: 4 });
    gates[1]!();
    await settle();
    assert.deepEqual(order, [0, 1, 2]);
    gates[0]!();
    await settle();
    assert.deepEqual(order, [0, 1, 2, 3]);
    gates[2]!();
    gates[3]!();
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
    assert.deepEqual(limiter.stats('a.example').processing, 0);
  });

  test('more than reject_limit waiting requests: the next is refused with 429 M_LIMIT_EXCEEDED at once', async () => {
    const { limiter, sleepers } = harness({ window_size: 1000, sleep_limit: 1, sleep_delay: 500, reject_limit: 2, concurrent: 1 });
    const first = await limiter.acquire('a.example');
    // Three more wait (each sleeps, being beyond sleep_limit): more than reject_limit.
    const waiting = [limiter.acquire('a.example'), limiter.acquire('a.example'), limiter.acquire('a.example')];
    await settle();
    assert.equal(sleepers.length, 3);
    await assert.rejects(limiter.acquire('a.example'), (err: unknown) => {
      assert.ok(err instanceof MatrixError);
      assert.equal(err.status, 429);
      assert.equal(err.errcode, 'M_LIMIT_EXCEEDED');
      assert.equal(err.toJSON().retry_after_ms, 1000); // window_size / sleep_limit, as Synapse
      return true;
    });
    // Others are not affected.
    (await limiter.acquire('b.example'))();
    for (const sleeper of sleepers.splice(0)) sleeper.wake();
    first();
    for (const acquired of waiting) (await acquired)();
    // The refused request was not counted.
    assert.deepEqual(limiter.stats('a.example'), { waiting: 0, processing: 0, inWindow: 4 });
  });

  test('a failing handler frees its slot', async () => {
    const { limiter } = harness({ window_size: 1000, sleep_limit: 100, sleep_delay: 0, reject_limit: 50, concurrent: 1 });
    await assert.rejects(
      limiter.run('a.example', () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await limiter.run('a.example', async () => 'next'), 'next');
  });
});
