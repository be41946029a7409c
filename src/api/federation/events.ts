// Server-server API, retrieving events (S:data/api/server-server/events.yaml): GET /event, /state,
// /state_ids and /timestamp_to_event. The room checks (server ACL, the origin in the room) and
// the history visibility of what is served are the handler's (handlers/federation/event-reads.ts);
// the dispatcher checks the ACL of routes with a `{roomId}` first.

import { isValidEventId } from '../../core/identifiers.js';
import { Errors } from '../../errors.js';
import { requiredEnumParam, requiredIntegerParam, requiredStringParam } from '../../http/query.js';
import { defineRoute } from '../define-route.js';

/** The `event_id` query parameter: required, an event id. */
export function eventIdParam(query: URLSearchParams): string {
  const eventId = requiredStringParam(query, 'event_id');
  if (!isValidEventId(eventId)) throw Errors.invalidParam('event_id is not an event id');
  return eventId;
}

export const federationEventRoutes = [
  // GET /_matrix/federation/v1/event/{eventId}
  defineRoute({
    name: 'federation.event',
    method: 'GET',
    paths: '/_matrix/federation/v1/event/{eventId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params }, services) => ({ body: await services.federationApi.eventReads.event(origin, params.eventId) }),
  }),
  // GET /_matrix/federation/v1/state/{roomId}?event_id=
  defineRoute({
    name: 'federation.state',
    method: 'GET',
    paths: '/_matrix/federation/v1/state/{roomId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, services) => ({
      body: await services.federationApi.eventReads.state(origin, params.roomId, eventIdParam(query)),
    }),
  }),
  // GET /_matrix/federation/v1/state_ids/{roomId}?event_id=
  defineRoute({
    name: 'federation.state_ids',
    method: 'GET',
    paths: '/_matrix/federation/v1/state_ids/{roomId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, services) => ({
      body: await services.federationApi.eventReads.stateIds(origin, params.roomId, eventIdParam(query)),
    }),
  }),
  // GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=
  defineRoute({
    name: 'federation.timestamp_to_event',
    method: 'GET',
    paths: '/_matrix/federation/v1/timestamp_to_event/{roomId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, services) => ({
      body: await services.federationApi.eventReads.timestampToEvent(
        origin,
        params.roomId,
        requiredIntegerParam(query, 'ts', { min: 0 }),
        requiredEnumParam(query, 'dir', ['f', 'b']),
      ),
    }),
  }),
];
