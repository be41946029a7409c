// Client-server API: end-to-end encryption keys (S:data/api/client-server/keys.yaml). Uploads are
// served by the device_lists writer (they change device lists); queries, claims and changes by any
// process (Syn:docs/workers.md).

import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody } from './params.js';

export const keysRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/keys/upload
  defineRoute<ApiServices>({
    name: 'client.keys.upload',
    method: 'POST',
    paths: clientPaths('/keys/upload'),
    resource: 'client',
    servedBy: 'writer:device_lists',
    auth: 'user',
    handle: async (req, { deviceKeys }) => ({ body: await deviceKeys.upload(requesterOf(req), jsonBody(req)) }),
  }),
  // POST /_matrix/client/v3/keys/query
  defineRoute<ApiServices>({
    name: 'client.keys.query',
    method: 'POST',
    paths: clientPaths('/keys/query'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { deviceKeys }) => ({
      body: await deviceKeys.query(requesterOf(req), jsonBody(req)),
      contentType: 'application/json',
      headers: { 'Cache-Control': 'no-cache, no-store, must-revalidate' },
    }),
  }),
  // POST /_matrix/client/v3/keys/claim
  defineRoute<ApiServices>({
    name: 'client.keys.claim',
    method: 'POST',
    paths: clientPaths('/keys/claim'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { deviceKeys }) => ({ body: await deviceKeys.claim(jsonBody(req)) }),
  }),
  // GET /_matrix/client/v3/keys/changes?from&to
  defineRoute<ApiServices>({
    name: 'client.keys.changes',
    method: 'GET',
    paths: clientPaths('/keys/changes'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { deviceKeys }) => {
      const from = req.query.get('from');
      if (from === null) throw Errors.missingParam("Missing 'from'");
      return { body: await deviceKeys.changes(requesterOf(req), from, req.query.get('to') ?? undefined) };
    },
  }),
];
