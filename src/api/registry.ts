// The route registry: every endpoint this server has, in one list. The HTTP router of each
// listener, `myelin routes`, and (later) the reverse-proxy config generator and the built-in
// router all read this list; nothing else declares routes.

import type { RouteDefinition } from '../http/route.js';
import { versionsRoutes } from './client/versions.js';
import { wellKnownRoutes } from './client/well-known.js';
import { healthRoutes } from './health.js';
import type { ApiServices } from './services.js';

export const ROUTES: readonly RouteDefinition<ApiServices>[] = [...versionsRoutes, ...wellKnownRoutes, ...healthRoutes];
