// Client-server API: end-to-end encryption keys (S:data/api/client-server/keys.yaml). Uploads are
// served by the device_lists writer (they change device lists); queries, claims and changes by any
// process (Syn:docs/workers.md).

import { z } from 'zod';
import { jsonObject } from '../../errors.js';
import { requiredStringParam, stringParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObjectWith } from '../schemas.js';
import type { ApiServices } from '../services.js';

/** `timeout` is checked here; the rest (`device_keys`, `one_time_keys`) by the handler. */
const queryOrClaim = jsonObjectWith({ timeout: z.number().optional() });

export const keysRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/keys/upload
  defineRoute({
    name: 'client.keys.upload',
    method: 'POST',
    paths: clientPaths('/keys/upload'),
    resource: 'client',
    servedBy: 'writer:device_lists',
    auth: 'guest',
    // Device, one-time and fallback keys, each checked (and its signature verified) by the handler.
    body: jsonObject,
    handle: async ({ requester, body }, { deviceKeys }) => ({ body: await deviceKeys.upload(requester, body) }),
  }),
  // POST /_matrix/client/v3/keys/query
  defineRoute({
    name: 'client.keys.query',
    method: 'POST',
    paths: clientPaths('/keys/query'),
    resource: 'client',
    auth: 'guest',
    body: queryOrClaim,
    handle: async ({ requester, body }, { deviceKeys }) => ({
      body: await deviceKeys.query(requester, body),
      contentType: 'application/json',
      headers: { 'Cache-Control': 'no-cache, no-store, must-revalidate' },
    }),
  }),
  // POST /_matrix/client/v3/keys/claim
  defineRoute({
    name: 'client.keys.claim',
    method: 'POST',
    paths: clientPaths('/keys/claim'),
    resource: 'client',
    auth: 'guest',
    body: queryOrClaim,
    handle: async ({ body }, { deviceKeys }) => ({ body: await deviceKeys.claim(body) }),
  }),
  // GET /_matrix/client/v3/keys/changes?from&to
  defineRoute({
    name: 'client.keys.changes',
    method: 'GET',
    paths: clientPaths('/keys/changes'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, query }, { deviceKeys }) => ({
      body: await deviceKeys.changes(requester, requiredStringParam(query, 'from'), stringParam(query, 'to')),
    }),
  }),
];
