// `npm run bench -- [GROUP...] [--json FILE]`: runs benchmark groups and prints one table of
// figures with their unit, target and whether the target is met; `--json` writes the same rows.
// The machine's ceilings are measured in every run so each figure can be read as a ratio.
// Benchmarks never fail: a missed target is reported, not enforced.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { measureCeilings } from './ceilings.js';
import { measureClient } from './client.js';
import { measureCoreFormat } from './core-format.js';
import { measureE2ee } from './e2ee.js';
import { measureFederation } from './federation.js';
import { measureStateRes } from './core-state-res.js';
import { measureWorkers } from './workers.js';
import type { Figure } from './harness.js';

const GROUPS: Record<string, () => Promise<Figure[]>> = {
  ceilings: measureCeilings,
  core: async () => [...(await measureCoreFormat()), ...(await measureStateRes())],
  client: measureClient,
  e2ee: measureE2ee,
  workers: measureWorkers,
  federation: measureFederation,
};

function formatValue(value: number): string {
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return value.toLocaleString('en-US', { maximumFractionDigits: value < 10 ? 2 : 1 });
}

export function formatTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => [
    f.group,
    f.name,
    formatValue(f.value),
    f.unit,
    f.target === null ? '' : `${f.op} ${formatValue(f.target)}`,
    f.met === null ? '' : f.met ? 'yes' : 'NO',
  ]);
  const header = ['group', 'figure', 'value', 'unit', 'target', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { json: { type: 'string' } },
    allowPositionals: true,
  });
  const unknown = positionals.filter((g) => !(g in GROUPS));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark group(s): ${unknown.join(', ')}; known: ${Object.keys(GROUPS).join(', ')}\n`);
    process.exit(2);
  }
  // Ceilings always run (first, on a quiet machine) so every figure has its reference.
  const selected = positionals.length ? positionals : Object.keys(GROUPS);
  const groups = ['ceilings', ...selected.filter((g) => g !== 'ceilings')];
  const figures: Figure[] = [];
  for (const group of groups) {
    process.stderr.write(`bench: measuring ${group} ...\n`);
    figures.push(...(await GROUPS[group]!()));
  }
  process.stdout.write(`${formatTable(figures)}\n`);
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify(figures, null, 2)}\n`);
    process.stderr.write(`bench: wrote ${values.json}\n`);
  }
}

await main();
