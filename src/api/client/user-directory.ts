// Client-server API: POST /user_directory/search (S:data/api/client-server/users.yaml). Guests
// may not search (as Synapse), hence `auth: 'user'`.

import { z } from 'zod';
import { MAX_USER_DIRECTORY_LIMIT } from '../../handlers/room-reads/user-directory.js';
import { optionalInteger, requiredString } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const userDirectoryRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/user_directory/search
  defineRoute({
    name: 'client.user_directory.search',
    method: 'POST',
    paths: clientPaths('/user_directory/search'),
    resource: 'client',
    auth: 'user',
    body: z.object({ search_term: requiredString, limit: optionalInteger }),
    handle: async ({ requester, body }, { userDirectory }) => {
      // Synapse clamps rather than refuses.
      const limit = Math.max(0, Math.min(body.limit ?? 10, MAX_USER_DIRECTORY_LIMIT));
      return { body: await userDirectory.search(requester.userId, body.search_term, limit) };
    },
  }),
];
