// Server-server API: GET /_matrix/federation/v1/openid/userinfo?access_token=
// (S:data/api/server-server/openid.yaml). Not signed: a third party (not a homeserver) asks it.

import { requiredStringParam } from '../../http/query.js';
import { defineRoute } from '../define-route.js';

export const federationOpenIdRoutes = [
  // GET /_matrix/federation/v1/openid/userinfo
  defineRoute({
    name: 'federation.openid.userinfo',
    method: 'GET',
    paths: '/_matrix/federation/v1/openid/userinfo',
    resource: 'federation',
    handle: ({ query }, services) => ({ body: services.federationApi.queries.openIdUserInfo(requiredStringParam(query, 'access_token')) }),
  }),
];
