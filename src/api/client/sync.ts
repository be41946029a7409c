// Client-server API: GET /sync (S:data/api/client-server/sync.yaml; spec: client-server API §Syncing).

import { DEFAULT_FILTER, parseSyncFilterParam, type Filter } from '../../core/filters.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import { decodeSyncToken } from '../../streams/streams.js';
import { LruCache } from '../../util/lru.js';
import type { ApiServices } from '../services.js';

/** Long-polls are capped so a client cannot hold a connection for hours. */
const MAX_TIMEOUT_MS = 5 * 60_000;

function booleanParam(req: RouteRequest, name: string): boolean {
  const value = req.query.get(name);
  if (value === null) return false;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw Errors.invalidParam(`"${name}" must be true or false`);
}

/** Clients send the same inline filter on every request; parse each distinct one once. */
const inlineFilters = new LruCache<string, ReturnType<typeof parseSyncFilterParam>>(1_000);

async function filterOf(req: RouteRequest, services: ApiServices, userId: string): Promise<Filter> {
  const param = req.query.get('filter');
  if (param === null || param === '') return DEFAULT_FILTER;
  let parsed = inlineFilters.get(param);
  if (!parsed) {
    parsed = parseSyncFilterParam(param);
    inlineFilters.set(param, parsed);
  }
  if (parsed.kind === 'inline') return parsed.filter;
  const stored = await services.filters.getFilter(userId, parsed.id);
  if (!stored) throw Errors.notFound('No such filter');
  return stored;
}

export const syncRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/sync
  defineRoute<ApiServices>({
    name: 'client.sync',
    method: 'GET',
    paths: clientPaths('/sync'),
    resource: 'client',
    auth: 'user',
    sticky: 'user',
    handle: async (req, services) => {
      const requester = requesterOf(req);
      const since = req.query.get('since');
      const timeoutParam = req.query.get('timeout');
      const timeout = timeoutParam === null || timeoutParam === '' ? 0 : Number(timeoutParam);
      if (!Number.isFinite(timeout) || timeout < 0) throw Errors.invalidParam('"timeout" must be a non-negative number of milliseconds');
      const setPresence = req.query.get('set_presence') ?? undefined;
      if (setPresence !== undefined && !['online', 'offline', 'unavailable'].includes(setPresence)) {
        throw Errors.invalidParam('"set_presence" must be online, offline or unavailable');
      }
      const stateAfterKey = booleanParam(req, 'use_state_after')
        ? 'state_after'
        : booleanParam(req, 'org.matrix.msc4222.use_state_after')
          ? 'org.matrix.msc4222.state_after'
          : undefined;
      const body = await services.sync.sync({
        userId: requester.userId,
        deviceId: requester.deviceId,
        since: since ? decodeSyncToken(since) : undefined,
        timeoutMs: Math.min(timeout, MAX_TIMEOUT_MS),
        fullState: booleanParam(req, 'full_state'),
        filter: await filterOf(req, services, requester.userId),
        setPresence,
        stateAfterKey,
        signal: req.signal,
      });
      return { body };
    },
  }),
];
