// Client-server API: GET /_matrix/client/versions (S:data/api/client-server/versions.yaml).

import { defineRoute } from '../define-route.js';

/** The spec versions whose client-server API this server implements. */
export const SUPPORTED_SPEC_VERSIONS = [
  'r0.6.1',
  'v1.1',
  'v1.2',
  'v1.3',
  'v1.4',
  'v1.5',
  'v1.6',
  'v1.7',
  'v1.8',
  'v1.9',
  'v1.10',
  'v1.11',
  'v1.12',
] as const;

export const versionsRoutes = [
  // GET /_matrix/client/versions
  defineRoute({
    name: 'client.versions',
    method: 'GET',
    paths: '/_matrix/client/versions',
    resource: 'client',
    handle: () => ({ body: { versions: SUPPORTED_SPEC_VERSIONS, unstable_features: {} } }),
  }),
];
