// Server key API (S:data/api/server-server/keys_server.yaml, keys_query.yaml): our signing keys,
// and the notary endpoints that hand out other servers' keys, each answer also signed by us.
// Served on the `keys` resource, which every `federation` listener includes (as Synapse).
// The `/{keyId}` forms were dropped from the spec in v1.6; Synapse still answers them, and so do we.

import { isValidServerName } from '../../core/identifiers.js';
import { parseKeyQueryRequest, parseMinimumValidUntilParam, type KeyQuery } from '../../core/server-keys.js';
import { Errors, jsonObject } from '../../errors.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

function checkServerName(serverName: string): string {
  if (!isValidServerName(serverName)) throw Errors.invalidParam(`Not a server name: ${JSON.stringify(serverName)}`);
  return serverName;
}

function minimumValidUntil(query: URLSearchParams, now: number): number {
  const minimum = parseMinimumValidUntilParam(query.get('minimum_valid_until_ts') ?? undefined, now);
  if (minimum === undefined) throw Errors.invalidParam('minimum_valid_until_ts must be an integer');
  return minimum;
}

async function notaryAnswer(services: ApiServices, query: KeyQuery, minimumForAllKeys?: number) {
  return { body: { server_keys: await services.federation.keyring.queryAsNotary(query, minimumForAllKeys) } };
}

export const serverKeysRoutes = [
  // GET /_matrix/key/v2/server
  defineRoute({
    name: 'keys.server',
    method: 'GET',
    paths: ['/_matrix/key/v2/server', '/_matrix/key/v2/server/{keyId}'],
    resource: 'keys',
    handle: (_request, services) => ({ body: services.federation.ownKeys.answer() }),
  }),
  // GET /_matrix/key/v2/query/{serverName}
  defineRoute({
    name: 'keys.query.server',
    method: 'GET',
    paths: '/_matrix/key/v2/query/{serverName}',
    resource: 'keys',
    handle: ({ params, query }, services) => {
      const serverName = checkServerName(params.serverName);
      return notaryAnswer(services, new Map([[serverName, new Map()]]), minimumValidUntil(query, services.now()));
    },
  }),
  // GET /_matrix/key/v2/query/{serverName}/{keyId} (before spec v1.6)
  defineRoute({
    name: 'keys.query.server.key',
    method: 'GET',
    paths: '/_matrix/key/v2/query/{serverName}/{keyId}',
    resource: 'keys',
    handle: ({ params, query }, services) => {
      const serverName = checkServerName(params.serverName);
      const minimum = minimumValidUntil(query, services.now());
      return notaryAnswer(services, new Map([[serverName, new Map([[params.keyId, minimum]])]]));
    },
  }),
  // POST /_matrix/key/v2/query
  defineRoute({
    name: 'keys.query',
    method: 'POST',
    paths: '/_matrix/key/v2/query',
    resource: 'keys',
    body: jsonObject,
    handle: ({ body }, services) => {
      const parsed = parseKeyQueryRequest(body, services.now());
      if (!parsed.ok) throw Errors.badJson(parsed.message);
      return notaryAnswer(services, parsed.query);
    },
  }),
];
