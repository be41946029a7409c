// Walks the config schema's structure. The loader uses it to warn about unknown keys and to
// resolve relative file paths; the reference generator uses it to list every key. Only the zod
// node types our schema uses are handled.

import type { z } from 'zod';
import { keyMeta, type KeyMeta } from './schema.js';

export type SchemaNode = z.ZodType;

interface Def {
  type: string;
  innerType?: SchemaNode;
  in?: SchemaNode;
  out?: SchemaNode;
  element?: SchemaNode;
  valueType?: SchemaNode;
  options?: SchemaNode[];
  shape?: Record<string, SchemaNode>;
  defaultValue?: unknown;
}

function defOf(schema: SchemaNode): Def {
  return (schema as unknown as { def: Def }).def;
}

/** The first metadata found on the node or the wrappers inside it. */
export function metaOf(schema: SchemaNode): KeyMeta | undefined {
  for (let node: SchemaNode | undefined = schema; node; node = unwrapOnce(node)) {
    const meta = keyMeta.get(node);
    if (meta) return meta;
  }
  return undefined;
}

function unwrapOnce(schema: SchemaNode): SchemaNode | undefined {
  const def = defOf(schema);
  if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable') return def.innerType;
  if (def.type === 'pipe') return def.in;
  return undefined;
}

/** Strips optional/default/transform wrappers. */
export function unwrap(schema: SchemaNode): SchemaNode {
  let node = schema;
  for (let inner = unwrapOnce(node); inner; inner = unwrapOnce(node)) node = inner;
  return node;
}

export function defaultOf(schema: SchemaNode): unknown {
  for (let node: SchemaNode | undefined = schema; node; node = unwrapOnce(node)) {
    const def = defOf(node);
    if (def.type === 'default') {
      const value = def.defaultValue;
      return typeof value === 'function' ? (value as () => unknown)() : value;
    }
  }
  return undefined;
}

export type NodeKind =
  | { kind: 'object'; shape: Record<string, SchemaNode> }
  | { kind: 'array'; element: SchemaNode }
  | { kind: 'record'; value: SchemaNode }
  | { kind: 'union'; options: SchemaNode[] }
  | { kind: 'leaf'; type: string };

export function kindOf(schema: SchemaNode): NodeKind {
  const node = unwrap(schema);
  const def = defOf(node);
  switch (def.type) {
    case 'object':
      return { kind: 'object', shape: def.shape ?? (node as unknown as { shape: Record<string, SchemaNode> }).shape };
    case 'array':
      return { kind: 'array', element: def.element! };
    case 'record':
      return { kind: 'record', value: def.valueType! };
    case 'union':
      return { kind: 'union', options: def.options! };
    default:
      return { kind: 'leaf', type: def.type };
  }
}

export type KeyPath = ReadonlyArray<string | number>;

export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out;
}

/**
 * Visits `value` alongside `schema`. `onUnknownKey` is called for object keys the schema does not
 * define; `onLeaf` for every value whose schema node carries metadata (it may return a
 * replacement value). Values of the wrong shape are left for validation to report.
 */
export function visitConfigValue(
  schema: SchemaNode,
  value: unknown,
  path: (string | number)[],
  visitor: {
    onUnknownKey?: (path: KeyPath) => void;
    onMeta?: (meta: KeyMeta, value: unknown, path: KeyPath) => unknown;
  },
): unknown {
  const meta = keyMeta.get(schema) ?? metaOf(schema);
  let current = value;
  if (meta && visitor.onMeta && path.length > 0) current = visitor.onMeta(meta, current, path);
  const node = kindOf(schema);
  if (node.kind === 'object' && isPlainObject(current)) {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(current)) {
      const childSchema = node.shape[key];
      if (childSchema === undefined) {
        visitor.onUnknownKey?.([...path, key]);
        out[key] = child;
      } else {
        out[key] = visitConfigValue(childSchema, child, [...path, key], visitor);
      }
    }
    return out;
  }
  if (node.kind === 'array' && Array.isArray(current)) {
    return current.map((item, i) => visitConfigValue(node.element, item, [...path, i], visitor));
  }
  if (node.kind === 'record' && isPlainObject(current)) {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(current)) {
      out[key] = visitConfigValue(node.value, child, [...path, key], visitor);
    }
    return out;
  }
  return current;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
