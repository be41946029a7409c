// Server-server API, backfilling and missing events (S:data/api/server-server/backfill.yaml):
// GET /backfill/{roomId}?v=&limit= and POST /get_missing_events/{roomId}.

import { z } from 'zod';
import { isValidEventId } from '../../core/identifiers.js';
import { absentIfNull, Errors } from '../../errors.js';
import { requiredIntegerParam } from '../../http/query.js';
import { defineRoute } from '../define-route.js';

/** At most this many event ids in one request's lists (the walks serve at most 100 events anyway). */
const MAX_IDS = 100;

const eventIds = z.array(z.string().refine((id) => isValidEventId(id), { error: 'expected an event id' })).max(MAX_IDS);

const missingEventsBody = z.object({
  earliest_events: eventIds,
  latest_events: eventIds,
  limit: absentIfNull(z.int().min(0).optional()),
  min_depth: absentIfNull(z.int().min(0).optional()),
});

export const federationBackfillRoutes = [
  // GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=
  defineRoute({
    name: 'federation.backfill',
    method: 'GET',
    paths: '/_matrix/federation/v1/backfill/{roomId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, services) => {
      const from = query.getAll('v');
      if (from.length === 0) throw Errors.missingParam('Missing v');
      if (from.length > MAX_IDS || from.some((id) => !isValidEventId(id))) throw Errors.invalidParam('v must be event ids');
      const limit = requiredIntegerParam(query, 'limit', { min: 0 });
      return { body: await services.federationApi.eventReads.backfill(origin, params.roomId, from, limit) };
    },
  }),
  // POST /_matrix/federation/v1/get_missing_events/{roomId}
  defineRoute({
    name: 'federation.get_missing_events',
    method: 'POST',
    paths: '/_matrix/federation/v1/get_missing_events/{roomId}',
    resource: 'federation',
    auth: 'server',
    body: missingEventsBody,
    handle: async ({ origin, params, body }, services) => ({
      body: await services.federationApi.eventReads.missingEvents(origin, params.roomId, {
        earliestEvents: body.earliest_events,
        latestEvents: body.latest_events,
        limit: body.limit,
        minDepth: body.min_depth,
      }),
    }),
  }),
];
