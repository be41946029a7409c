// `defineRoute` for this server's API: handlers receive `ApiServices` (see src/http/route.ts for
// what a declaration says and how it types the handler's request).

import { routeDefiner } from '../http/route.js';
import type { ApiServices } from './services.js';

export const defineRoute = routeDefiner<ApiServices>();
