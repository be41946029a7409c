// What the types of a route declaration promise, checked by the compiler (`npm test` type-checks
// this file: each `@ts-expect-error` must meet an error), and what the registry's routes declare,
// checked at run time: every route that reads a JSON body has a schema for it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ROUTES } from '../../src/api/registry.js';
import { defineRoute } from '../../src/api/define-route.js';
import { jsonObject } from '../../src/errors.js';
import { clientPaths, routeDefiner, type RouteDefinition } from '../../src/http/route.js';

const noServices = routeDefiner<null>();
const ok = { body: {} };

/** Declarations the compiler must accept, and the mistakes it must refuse. */
export const declarations: RouteDefinition<never>[] = [
  // Path parameters come from the template, as strings; others do not exist.
  noServices({
    name: 'types.params',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/send/{eventType}/{txnId}'),
    resource: 'client',
    handle: ({ params }) => {
      const ids: string[] = [params.roomId, params.eventType, params.txnId];
      // @ts-expect-error: no {stateKey} in the template
      ids.push(params.stateKey);
      return ok;
    },
  }),
  // Several templates: only the parameters all of them have.
  noServices({
    name: 'types.aliases',
    method: 'GET',
    paths: [...clientPaths('/rooms/{roomId}/state/{eventType}/{stateKey}'), ...clientPaths('/rooms/{roomId}/state/{eventType}')],
    resource: 'client',
    handle: ({ params }) => {
      const ids: string[] = [params.roomId, params.eventType];
      // @ts-expect-error: {stateKey} is not in every template
      ids.push(params.stateKey);
      return ok;
    },
  }),
  // `user` and `guest` routes always have a requester...
  noServices({
    name: 'types.user',
    method: 'GET',
    paths: '/u',
    resource: 'client',
    auth: 'user',
    handle: ({ requester }) => ({ body: { user_id: requester.userId } }),
  }),
  noServices({
    name: 'types.guest',
    method: 'GET',
    paths: '/g',
    resource: 'client',
    auth: 'guest',
    handle: ({ requester }) => ({ body: { guest: requester.isGuest } }),
  }),
  // ...`none` routes never...
  noServices({
    name: 'types.none',
    method: 'GET',
    paths: '/n',
    resource: 'client',
    // @ts-expect-error: no requester without auth
    handle: ({ requester }) => ({ body: { requester } }),
  }),
  // ...and `server` routes have the origin instead.
  noServices({
    name: 'types.server',
    method: 'GET',
    paths: '/s',
    resource: 'client',
    auth: 'server',
    handle: (req) => {
      const origin: string = req.origin;
      // @ts-expect-error: a server is not a user
      return { body: { origin, user: req.requester } };
    },
  }),
  // The body is what its schema gives.
  noServices({
    name: 'types.body',
    method: 'POST',
    paths: '/b',
    resource: 'client',
    body: z.object({ limit: z.number(), name: z.string().optional() }),
    handle: ({ body }) => {
      const limit: number = body.limit;
      // @ts-expect-error: may be absent
      const name: string = body.name;
      return { body: { limit, name } };
    },
  }),
  // POST and PUT must say what their body is (a schema, 'raw' or 'none').
  // @ts-expect-error: no body declared
  noServices({ name: 'types.nobody', method: 'PUT', paths: '/p', resource: 'client', handle: () => ok }),
  noServices({
    name: 'types.nobody.ok',
    method: 'PUT',
    paths: '/p',
    resource: 'client',
    body: 'none',
    handle: ({ body }) => ({ body: { body: body ?? null } }),
  }),
  // The API's defineRoute hands handlers the ApiServices.
  defineRoute({
    name: 'types.services',
    method: 'POST',
    paths: '/x',
    resource: 'client',
    auth: 'user',
    body: jsonObject,
    handle: async ({ requester }, { profiles }) => ({ body: await profiles.profile(requester.userId) }),
  }),
];

test('every route of the registry that reads a JSON body parses it with a schema', () => {
  const missing = ROUTES.filter((route) => (route.body === 'json' || route.body === 'json-optional') && route.bodySchema === undefined);
  assert.deepEqual(
    missing.map((route) => route.name),
    [],
  );
  // POST and PUT routes read a body, but for the few that say they take none.
  const bodiless = ROUTES.filter((route) => (route.method === 'POST' || route.method === 'PUT') && route.body === 'none').map(
    (route) => route.name,
  );
  assert.deepEqual(bodiless.sort(), ['client.logout', 'client.logout.all']);
});

test('every route of the registry declares who may call it', () => {
  for (const route of ROUTES) assert.ok(['none', 'user', 'guest', 'server'].includes(route.auth), `${route.name}: ${route.auth}`);
  // Guests are refused where Synapse refuses them: key backups and the user directory.
  const userOnly = ROUTES.filter((route) => route.auth === 'user').map((route) => route.name);
  assert.ok(userOnly.includes('client.user_directory.search'));
  assert.ok(userOnly.includes('client.room_keys.version.create'));
});
