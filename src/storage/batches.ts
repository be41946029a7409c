// Long lists of keys are queried in batches: one `IN (...)` list per batch keeps statements under
// SQLite's and PostgreSQL's parameter limits.

/** How many parameters one `IN (...)` list takes: well below SQLite's and PostgreSQL's limits. */
export const BATCH = 500;

export function inBatches<T>(items: readonly T[], size = BATCH): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}

/** `?,?,…` for an `IN (...)` list of `count` values. */
export function placeholders(count: number): string {
  return Array.from({ length: count }, () => '?').join(',');
}
