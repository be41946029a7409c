// The shape every benchmark group returns, and the table/JSON it is reported as (see
// ../shared/DESIGN.md, "Benchmarks"). Figures are never pass/fail for CI: `met` is informative.

export interface Figure {
  group: string;
  name: string;
  value: number;
  unit: string;
  /** `null` when the figure is reported without a target (e.g. a ceiling or "report it"). */
  target: number | null;
  op: '>=' | '<=' | null;
  met: boolean | null;
}

export function figure(group: string, name: string, value: number, unit: string, target?: { op: '>=' | '<='; value: number }): Figure {
  if (!target) return { group, name, value, unit, target: null, op: null, met: null };
  const met = target.op === '>=' ? value >= target.value : value <= target.value;
  return { group, name, value, unit, target: target.value, op: target.op, met };
}

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-th percentile (0–100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Runs `fn` repeatedly for about `ms` milliseconds, `rounds` times, and returns the median rate
 * in operations per second. `fn` returns how many operations it did.
 */
export function measureRate(fn: () => number, { ms = 500, rounds = 5 } = {}): number {
  const rates: number[] = [];
  fn(); // warm up the JIT before measuring
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms) * 1_000_000n;
    let now = start;
    while (now < deadline) {
      ops += fn();
      now = process.hrtime.bigint();
    }
    rates.push(ops / (Number(now - start) / 1e9));
  }
  return median(rates);
}

/**
 * Runs `concurrency` loops of the async `fn` for `ms` milliseconds after a short warm-up and returns
 * completed operations per second (`fn` returns how many it completed).
 */
export async function measureConcurrentRate(ms: number, fn: () => Promise<number>, concurrency: number): Promise<number> {
  let running = true;
  let count = 0;
  const worker = async () => {
    while (running) {
      // Not `count += await fn()`: that reads `count` before awaiting and loses concurrent updates.
      const done = await fn();
      count += done;
    }
  };
  const warmup = Date.now() + 300;
  const workers = Array.from({ length: concurrency }, worker);
  while (Date.now() < warmup) await new Promise((r) => setTimeout(r, 50));
  const start = process.hrtime.bigint();
  const startCount = count;
  await new Promise((r) => setTimeout(r, ms));
  const done = count - startCount;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  running = false;
  await Promise.all(workers);
  return done / elapsed;
}
