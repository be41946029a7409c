// Client-server API: GET /sync (S:data/api/client-server/sync.yaml; spec: client-server API §Syncing).

import { DEFAULT_FILTER, InvalidFilterError, parseSyncFilterParam, type Filter } from '../../core/filters.js';
import { Errors } from '../../errors.js';
import { booleanParam, enumParam, numberParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { decodeSyncToken } from '../../streams/streams.js';
import { LruCache } from '../../util/lru.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/** Long-polls are capped so a client cannot hold a connection for hours. */
const MAX_TIMEOUT_MS = 5 * 60_000;

/** Clients send the same inline filter on every request; parse each distinct one once. */
const inlineFilters = new LruCache<string, ReturnType<typeof parseSyncFilterParam>>(1_000);

async function filterOf(query: URLSearchParams, services: ApiServices, userId: string): Promise<Filter> {
  const param = query.get('filter');
  if (param === null || param === '') return DEFAULT_FILTER;
  let parsed = inlineFilters.get(param);
  if (!parsed) {
    try {
      parsed = parseSyncFilterParam(param);
    } catch (err) {
      throw err instanceof InvalidFilterError ? Errors.fromCore(err) : err;
    }
    inlineFilters.set(param, parsed);
  }
  if (parsed.kind === 'inline') return parsed.filter;
  const stored = await services.filters.getFilter(userId, parsed.id);
  if (!stored) throw Errors.notFound('No such filter');
  return stored;
}

export const syncRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/sync
  defineRoute({
    name: 'client.sync',
    method: 'GET',
    paths: clientPaths('/sync'),
    resource: 'client',
    auth: 'guest',
    sticky: 'user',
    handle: async ({ requester, query, signal }, services) => {
      const since = query.get('since');
      const timeout = numberParam(query, 'timeout', { min: 0 }) ?? 0;
      const setPresence = enumParam(query, 'set_presence', ['online', 'offline', 'unavailable']);
      const stateAfterKey = booleanParam(query, 'use_state_after')
        ? 'state_after'
        : booleanParam(query, 'org.matrix.msc4222.use_state_after')
          ? 'org.matrix.msc4222.state_after'
          : undefined;
      const body = await services.sync.sync({
        userId: requester.userId,
        deviceId: requester.deviceId,
        since: since ? decodeSyncToken(since) : undefined,
        timeoutMs: Math.min(timeout, MAX_TIMEOUT_MS),
        fullState: booleanParam(query, 'full_state') ?? false,
        filter: await filterOf(query, services, requester.userId),
        setPresence,
        stateAfterKey,
        signal,
      });
      return { body };
    },
  }),
];
