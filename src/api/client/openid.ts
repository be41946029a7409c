// Client-server API: POST /_matrix/client/v3/user/{userId}/openid/request_token
// (S:data/api/client-server/openid.yaml): a token the user hands to a third party, which asks our
// federation API (`/openid/userinfo`) who it belongs to. See core/openid-tokens.ts.

import { mintOpenIdToken, OPENID_TOKEN_LIFETIME_MS } from '../../core/openid-tokens.js';
import { Errors, jsonObject } from '../../errors.js';
import { optionalBody } from '../schemas.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

export const openIdRoutes = [
  // POST /_matrix/client/v3/user/{userId}/openid/request_token
  defineRoute({
    name: 'client.openid.request_token',
    method: 'POST',
    paths: clientPaths('/user/{userId}/openid/request_token'),
    resource: 'client',
    auth: 'user',
    body: optionalBody(jsonObject),
    handle: ({ requester, params }, services) => {
      if (requester.userId !== params.userId) throw Errors.forbidden('Cannot request tokens for other users.');
      return {
        body: {
          access_token: mintOpenIdToken(requester.userId, services.now(), services.signingKey),
          token_type: 'Bearer',
          matrix_server_name: services.serverName,
          expires_in: OPENID_TOKEN_LIFETIME_MS / 1000,
        },
      };
    },
  }),
];
