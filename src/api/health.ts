// GET /health: answers 200 "OK" while the process serves requests (used by load balancers,
// the supervisor and `myelin check`).

import { defineRoute } from './define-route.js';

export const healthRoutes = [
  // GET /health
  defineRoute({
    name: 'health',
    method: 'GET',
    paths: '/health',
    resource: 'health',
    handle: () => ({ body: 'OK', contentType: 'text/plain; charset=utf-8' }),
  }),
];
