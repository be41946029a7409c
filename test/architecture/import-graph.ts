// The import graph of a source tree, and the two rules it must keep: no import cycle, and no
// import from a lower layer to a higher one. Every import counts: static, `import type`,
// `export ... from`, dynamic `import()` and `import('…')` types (a cycle through a lazily loaded
// module is still a cycle for whoever reads the code).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** file (relative to the root, with `/`) → the files it imports. */
export type ImportGraph = Map<string, string[]>;

export interface UnresolvedImport {
  from: string;
  specifier: string;
}

function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.push(path);
  }
  return found.sort();
}

const posix = (path: string): string => path.split(sep).join('/');

/**
 * Reads every `.ts` file under `root` and the relative imports between them (package imports are
 * not ours and are left out). An import that names no file under `root` is reported.
 */
export function readImportGraph(root: string): { graph: ImportGraph; unresolved: UnresolvedImport[] } {
  const graph: ImportGraph = new Map();
  const unresolved: UnresolvedImport[] = [];
  for (const file of sourceFiles(root)) {
    const from = posix(relative(root, file));
    const targets = new Set<string>();
    for (const { fileName: specifier } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
      if (!existsSync(target) || !target.startsWith(root + sep)) {
        unresolved.push({ from, specifier });
        continue;
      }
      targets.add(posix(relative(root, target)));
    }
    graph.set(from, [...targets].sort());
  }
  return { graph, unresolved };
}

/**
 * The layer of a file: its top folder (`streams/bus.ts` → `streams`), or its own name for a file at
 * the root (`errors.ts`).
 */
export function layerOf(file: string): string {
  const slash = file.indexOf('/');
  return slash === -1 ? file : file.slice(0, slash);
}

export interface ForbiddenImport {
  from: string;
  to: string;
  fromLayer: string;
  toLayer: string;
}

/**
 * The imports that go up the layer order (`layers`, lowest first): a file may import files of
 * its own layer and of lower ones. A file whose layer is not in the order is reported too (with
 * `toLayer` empty), so a new folder must be given its place.
 */
export function forbiddenImports(graph: ImportGraph, layers: readonly string[]): ForbiddenImport[] {
  const rank = new Map(layers.map((layer, i) => [layer, i]));
  const out: ForbiddenImport[] = [];
  for (const [from, targets] of graph) {
    const fromRank = rank.get(layerOf(from));
    if (fromRank === undefined) {
      out.push({ from, to: '', fromLayer: layerOf(from), toLayer: '' });
      continue;
    }
    for (const to of targets) {
      const toRank = rank.get(layerOf(to));
      if (toRank !== undefined && toRank > fromRank) out.push({ from, to, fromLayer: layerOf(from), toLayer: layerOf(to) });
    }
  }
  return out;
}

/**
 * The import cycles: one per strongly connected component of more than one file (or a file that
 * imports itself), each given as a path `a → b → … → a` through the component.
 */
export function importCycles(graph: ImportGraph): string[][] {
  // Tarjan's algorithm, iterative so a long import chain cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; edge: number }> = [{ node: start, edge: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const targets = graph.get(frame.node) ?? [];
      if (frame.edge < targets.length) {
        const target = targets[frame.edge++]!;
        if (!index.has(target)) {
          index.set(target, next);
          low.set(target, next++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, edge: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(target)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfImport = (graph.get(frame.node) ?? []).includes(frame.node);
        if (component.length > 1 || selfImport) components.push(component.sort());
      }
    }
  }
  return components.sort((a, b) => a[0]!.localeCompare(b[0]!)).map((component) => cycleThrough(graph, component));
}

/** A shortest cycle from the component's first file back to itself, within the component. */
function cycleThrough(graph: ImportGraph, component: string[]): string[] {
  const members = new Set(component);
  const start = component[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const target of graph.get(node) ?? []) {
      if (!members.has(target)) continue;
      if (target === start) {
        const path = [start];
        for (let at = node; at !== start; at = cameFrom.get(at)!) path.unshift(at);
        path.unshift(start);
        return path;
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  return [start, start];
}
