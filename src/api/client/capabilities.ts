// Client-server API: GET /_matrix/client/v3/capabilities (S:data/api/client-server/capabilities.yaml).

import { ROOM_VERSIONS } from '../../core/room-versions.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

const AVAILABLE_ROOM_VERSIONS = Object.fromEntries([...ROOM_VERSIONS.keys()].map((id) => [id, 'stable']));

export const capabilitiesRoutes = [
  // GET /_matrix/client/v3/capabilities
  defineRoute({
    name: 'client.capabilities',
    method: 'GET',
    paths: clientPaths('/capabilities'),
    resource: 'client',
    auth: 'guest',
    handle: (_req, { config }) => ({
      body: {
        capabilities: {
          'm.room_versions': { default: config.default_room_version, available: AVAILABLE_ROOM_VERSIONS },
          'm.change_password': { enabled: true },
          'm.set_displayname': { enabled: true },
          'm.set_avatar_url': { enabled: true },
          // This server has no identity-server integration: no emails or phone numbers to add.
          'm.3pid_changes': { enabled: false },
        },
      },
    }),
  }),
];
