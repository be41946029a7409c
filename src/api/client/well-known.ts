// Server discovery: /.well-known/matrix/client and /.well-known/matrix/server
// (S:content/client-server-api/_index.md §Server Discovery, S:content/server-server-api.md
// §Resolving server names). Served only when configured, as Synapse does.

import { Errors } from '../../errors.js';
import { serverWellKnownDelegation } from '../../federation/well-known.js';
import { defineRoute } from '../define-route.js';

export const wellKnownRoutes = [
  // GET /.well-known/matrix/client
  defineRoute({
    name: 'wellknown.client',
    method: 'GET',
    paths: '/.well-known/matrix/client',
    resource: 'client',
    handle: (_req, { config }) => {
      if (!config.public_baseurl) throw Errors.notFound('No .well-known/matrix/client is configured (set public_baseurl)');
      return { body: { 'm.homeserver': { base_url: config.public_baseurl } } };
    },
  }),
  // GET /.well-known/matrix/server
  defineRoute({
    name: 'wellknown.server',
    method: 'GET',
    paths: '/.well-known/matrix/server',
    resource: 'client',
    handle: (_req, { config }) => {
      if (!config.serve_server_wellknown) throw Errors.notFound('No .well-known/matrix/server is configured');
      return { body: { 'm.server': serverWellKnownDelegation(config) } };
    },
  }),
];
