// `myelin routes`: the route registry as a table.

import type { RouteDefinition } from '../http/route.js';

export function formatRoutesTable(routes: readonly RouteDefinition<never>[]): string {
  const rows = routes.flatMap((route) =>
    route.paths.map((path) => [route.method, path, route.resource, route.servedBy, route.sticky, route.auth, route.name]),
  );
  const header = ['METHOD', 'PATH', 'RESOURCE', 'SERVED BY', 'STICKY', 'AUTH', 'NAME'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
