import type { RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const joinedRoomsRoutes: RouteDefinition<ApiServices>[] = [];
