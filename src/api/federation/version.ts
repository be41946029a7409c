// Server-server API: GET /_matrix/federation/v1/version (S:data/api/server-server/version.yaml).
// Unauthenticated, as the spec declares it (and as Synapse serves it).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineRoute } from '../define-route.js';

let cachedVersion: string | undefined;

/** The version in package.json (dist/api/federation/ → the package root). */
function serverVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
      cachedVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

export const federationVersionRoutes = [
  // GET /_matrix/federation/v1/version
  defineRoute({
    name: 'federation.version',
    method: 'GET',
    paths: '/_matrix/federation/v1/version',
    resource: 'federation',
    handle: () => ({ body: { server: { name: 'Myelin', version: serverVersion() } } }),
  }),
];
