// The configuration reference (README.md, `myelin config-reference`), generated from the schema
// so the documentation cannot drift from what the loader accepts.

import { configSchema, listenerSchema } from './schema.js';
import { defaultOf, kindOf, metaOf, type SchemaNode } from './walk.js';

interface Row {
  key: string;
  type: string;
  defaultValue: string;
  description: string;
}

function typeName(schema: SchemaNode): string {
  const node = kindOf(schema);
  switch (node.kind) {
    case 'object':
      return 'mapping';
    case 'array':
      return `list of ${typeName(node.element)}`;
    case 'record':
      return `mapping of name → ${typeName(node.value)}`;
    case 'union':
      return node.options.map(typeName).join(' or ');
    default:
      return enumValues(schema) ?? node.type;
  }
}

function enumValues(schema: SchemaNode): string | undefined {
  let node = schema as unknown as { def: { type: string; innerType?: unknown; entries?: Record<string, string> } };
  while (node.def.innerType) node = node.def.innerType as typeof node;
  return node.def.type === 'enum' && node.def.entries ? Object.values(node.def.entries).join(' | ') : undefined;
}

function rows(schema: SchemaNode, prefix: string, out: Row[], descend: (key: string) => boolean): Row[] {
  const node = kindOf(schema);
  if (node.kind !== 'object') return out;
  for (const [key, child] of Object.entries(node.shape)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const meta = metaOf(child);
    const def = defaultOf(child);
    out.push({
      key: path,
      type: typeName(child),
      defaultValue: def === undefined ? (meta?.example ? `e.g. \`${meta.example}\`` : '') : `\`${JSON.stringify(def)}\``,
      description: (meta?.description ?? '') + (meta?.isPath ? ' (Relative to the config file.)' : ''),
    });
    const childKind = kindOf(child);
    if (childKind.kind === 'object' && descend(path)) rows(child, path, out, descend);
    if (childKind.kind === 'record' && kindOf(childKind.value).kind === 'object' && descend(path)) {
      rows(childKind.value, `${path}.<name>`, out, descend);
    }
  }
  return out;
}

function table(list: Row[]): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    '| key | type | default | description |',
    '| --- | --- | --- | --- |',
    ...list.map((r) => `| \`${r.key}\` | ${escape(r.type)} | ${r.defaultValue} | ${escape(r.description)} |`),
  ].join('\n');
}

export function configReference(): string {
  const listenerKeys = (key: string) => key !== 'listeners' && key !== 'worker_listeners';
  const listenerRows = rows(listenerSchema, '', [], () => true);
  return [
    table(rows(configSchema, '', [], listenerKeys)),
    '',
    '**Listeners** (each entry of `listeners` and `worker_listeners`):',
    '',
    table(listenerRows),
  ].join('\n');
}
