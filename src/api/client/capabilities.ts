// Client-server API: GET /_matrix/client/v3/capabilities (S:data/api/client-server/capabilities.yaml).

import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '../../core/room-versions.js';
import { clientPaths, defineRoute } from '../../http/route.js';
import type { ApiServices } from '../services.js';

const ROOM_VERSIONS_CAPABILITY = {
  default: DEFAULT_ROOM_VERSION.id,
  available: Object.fromEntries([...ROOM_VERSIONS.keys()].map((id) => [id, 'stable'])),
};

export const capabilitiesRoutes = [
  // GET /_matrix/client/v3/capabilities
  defineRoute<ApiServices>({
    name: 'client.capabilities',
    method: 'GET',
    paths: clientPaths('/capabilities'),
    resource: 'client',
    auth: 'user',
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
