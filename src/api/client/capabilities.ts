// Client-server API: GET /_matrix/client/v3/capabilities (S:data/api/client-server/capabilities.yaml).

import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '../../core/room-versions.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

const ROOM_VERSIONS_CAPABILITY = {
  default: DEFAULT_ROOM_VERSION.id,
  available: Object.fromEntries([...ROOM_VERSIONS.keys()].map((id) => [id, 'stable'])),
};

export const capabilitiesRoutes = [
  // GET /_matrix/client/v3/capabilities
  defineRoute({
    name: 'client.capabilities',
    method: 'GET',
    paths: clientPaths('/capabilities'),
    resource: 'client',
    auth: 'guest',
    handle: () => ({
      body: {
        capabilities: {
          'm.room_versions': ROOM_VERSIONS_CAPABILITY,
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
