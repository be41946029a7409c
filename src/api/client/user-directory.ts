// Client-server API: POST /user_directory/search (S:data/api/client-server/users.yaml).

import { MAX_USER_DIRECTORY_LIMIT } from '../../handlers/room-reads/user-directory.js';
import { optionalInteger } from '../../handlers/room-reads/input.js';
import { MatrixError } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, stringField } from './params.js';

export const userDirectoryRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/user_directory/search
  defineRoute<ApiServices>({
    name: 'client.user_directory.search',
    method: 'POST',
    paths: clientPaths('/user_directory/search'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { userDirectory }) => {
      const requester = requesterOf(req);
      // Synapse refuses guests here.
      if (requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access not allowed');
      const body = jsonBody(req);
      const term = stringField(body, 'search_term', { required: true });
      // Synapse clamps rather than refuses.
      const limit = Math.max(0, Math.min(optionalInteger(body, 'limit') ?? 10, MAX_USER_DIRECTORY_LIMIT));
      return { body: await userDirectory.search(requester.userId, term, limit) };
    },
  }),
];
