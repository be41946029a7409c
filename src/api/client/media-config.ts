// Media repository configuration (S:data/api/client-server/authed-content-repo.yaml
// `/media/config`, and the legacy content-repo.yaml `/_matrix/media/v3/config`): the largest upload
// accepted. Clients ask at start-up, before any upload. Served where media is (a media worker, or
// main).

import type { RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

function mediaConfig({ config }: ApiServices): { body: { 'm.upload.size': number } } {
  return { body: { 'm.upload.size': config.max_upload_size } };
}

export const mediaConfigRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v1/media/config
  defineRoute({
    name: 'client.media.config',
    method: 'GET',
    paths: '/_matrix/client/v1/media/config',
    resource: 'client',
    servedBy: 'media',
    auth: 'guest',
    handle: (_req, services) => mediaConfig(services),
  }),
  // GET /_matrix/media/v3/config (deprecated for the one above)
  defineRoute({
    name: 'media.config',
    method: 'GET',
    paths: ['/_matrix/media/v3/config', '/_matrix/media/r0/config'],
    resource: 'media',
    servedBy: 'media',
    auth: 'guest',
    handle: (_req, services) => mediaConfig(services),
  }),
];
