// The shape of the source tree: `src/` is a stack of layers, each importing only itself and the
// layers below it, with no import cycle anywhere. The order below is the one place it is written
// down (docs/architecture.md, "Layout and dependency rules", explains each layer).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir, writeFiles } from '../helpers/tmp.js';
import { forbiddenImports, importCycles, readImportGraph } from './import-graph.js';

/**
 * Lowest first. A folder of `src/` is a layer; so is a file at its root (`errors.ts`).
 * `federation` (outbound federation) has its place before it exists.
 */
const LAYERS = [
  'core', // pure Matrix logic: imports nothing of ours
  'util',
  'errors.ts',
  'streams', // stream names, positions, the bus contract, the notifier
  'replication', // the bus over Redis, the command codec, replication HTTP
  'config',
  'storage',
  'federation',
  'handlers',
  'http',
  'api',
  'process', // composing one process: kernel → cluster → areas → routes
  'workers', // operating a deployment: topology, supervisor, router, proxy configs
  'cli',
] as const;

/**
 * Imports that go against the order and are tolerated for now, each with the reason. An entry whose
 * import is gone fails the test, so the list only shrinks.
 */
const TOLERATED: ReadonlyArray<{ from: string; to: string; why: string }> = [];

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

describe('the import graph of src/', () => {
  const { graph, unresolved } = readImportGraph(SRC);

  test('every relative import names a file of src/', () => {
    assert.deepEqual(
      unresolved.map((u) => `${u.from}: ${u.specifier}`),
      [],
    );
  });

  test('every file belongs to a layer, and no import goes up the layers', () => {
    const tolerated = (f: { from: string; to: string }) => TOLERATED.some((t) => t.from === f.from && t.to === f.to);
    const lines = forbiddenImports(graph, LAYERS)
      .filter((f) => !tolerated(f))
      .map((f) =>
        f.toLayer === ''
          ? `${f.from}: '${f.fromLayer}' has no place in LAYERS`
          : `${f.from} → ${f.to} (${f.fromLayer} must not import ${f.toLayer})`,
      );
    assert.equal(lines.length, 0, `imports from a lower layer to a higher one:\n  ${lines.join('\n  ')}`);
  });

  test('every tolerated upward import still exists (remove it from TOLERATED when it is gone)', () => {
    const gone = TOLERATED.filter((t) => !(graph.get(t.from) ?? []).includes(t.to)).map((t) => `${t.from} → ${t.to}`);
    assert.deepEqual(gone, []);
  });

  test('has no import cycle', () => {
    const cycles = importCycles(graph).map((cycle) => cycle.join(' → '));
    assert.equal(cycles.length, 0, `import cycles:\n  ${cycles.join('\n  ')}`);
  });
});

describe('the import checker', () => {
  test('finds cycles through static, type-only and dynamic imports, and upward imports', () => {
    const root = tempDir('myelin-imports-');
    writeFiles(root, {
      'low/a.ts': "import type { B } from './b.js';\nexport type A = B;\n",
      'low/b.ts': "export type B = string;\nexport const c = () => import('./c.js');\n",
      'low/c.ts': "export { type A } from './a.js';\n// import { x } from '../high/x.js' (a comment is no import)\n",
      'low/d.ts': "export type X = import('../high/x.js').X;\n",
      'high/x.ts': "import { c } from '../low/b.js';\nexport type X = typeof c;\n",
      'alone.ts': "import './alone.js';\n",
    });
    writeFileSync(join(root, 'high', 'y.ts'), "import { nothing } from './missing.js';\n");
    const { graph, unresolved } = readImportGraph(root);
    assert.deepEqual(unresolved, [{ from: 'high/y.ts', specifier: './missing.js' }]);
    assert.deepEqual(importCycles(graph), [
      ['alone.ts', 'alone.ts'],
      ['low/a.ts', 'low/b.ts', 'low/c.ts', 'low/a.ts'],
    ]);
    assert.deepEqual(
      forbiddenImports(graph, ['low', 'high']).map((f) => `${f.from} → ${f.to}`),
      ['alone.ts → ', 'low/d.ts → high/x.ts'],
    );
    assert.deepEqual(
      forbiddenImports(graph, ['alone.ts', 'low', 'high']).map((f) => `${f.from} → ${f.to}`),
      ['low/d.ts → high/x.ts'],
    );
  });
});
