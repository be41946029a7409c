// Client-server API: profiles (S:data/api/client-server/profile.yaml). Reading needs no access
// token (Synapse's default `require_auth_for_profile_requests: false`).
//
// The spec lets `keyName` name any field; this server stores `displayname` and `avatar_url` only.
// Other well-formed names read as absent (404) and cannot be written (403), rather than being
// accepted and lost.

import { utf8Length } from '../../core/identifiers.js';
import type { ProfileField } from '../../handlers/room-reads/profiles.js';
import { Errors, MatrixError } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody } from './params.js';

const KEY_NAME = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const fieldPaths = clientPaths('/profile/{userId}/{keyName}');

/** The path's field name checked against the spec's grammar; `undefined` for a field not stored here. */
function fieldOf(req: RouteRequest): ProfileField | undefined {
  const name = req.params.keyName ?? '';
  if (utf8Length(name) > 255) throw new MatrixError(400, 'M_KEY_TOO_LARGE', 'Profile key too long');
  if (!KEY_NAME.test(name)) throw Errors.invalidParam('Invalid profile key');
  return name === 'displayname' || name === 'avatar_url' ? name : undefined;
}

function writableFieldOf(req: RouteRequest): ProfileField {
  const field = fieldOf(req);
  if (field === undefined) throw Errors.forbidden(`This server does not store the profile field ${req.params.keyName}`);
  return field;
}

export const profileRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/profile/{userId}
  defineRoute<ApiServices>({
    name: 'client.profile.get',
    method: 'GET',
    paths: clientPaths('/profile/{userId}'),
    resource: 'client',
    handle: async (req, { profiles }) => ({ body: await profiles.profile(req.params.userId ?? '') }),
  }),
  // GET /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute<ApiServices>({
    name: 'client.profile.field.get',
    method: 'GET',
    paths: fieldPaths,
    resource: 'client',
    handle: async (req, { profiles }) => {
      const field = fieldOf(req);
      if (field === undefined) throw Errors.notFound(`The user has no ${req.params.keyName}`);
      return { body: await profiles.field(req.params.userId ?? '', field) };
    },
  }),
  // PUT /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute<ApiServices>({
    name: 'client.profile.field.put',
    method: 'PUT',
    paths: fieldPaths,
    resource: 'client',
    auth: 'user',
    handle: async (req, { profiles }) => {
      const field = writableFieldOf(req);
      const value = jsonBody(req)[field];
      if (value === undefined) throw Errors.missingParam(`Missing key '${field}'`);
      if (typeof value !== 'string') throw Errors.badJson(`'${field}' must be a string`);
      await profiles.setField(requesterOf(req), req.params.userId ?? '', field, value);
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute<ApiServices>({
    name: 'client.profile.field.delete',
    method: 'DELETE',
    paths: fieldPaths,
    resource: 'client',
    auth: 'user',
    handle: async (req, { profiles }) => {
      await profiles.setField(requesterOf(req), req.params.userId ?? '', writableFieldOf(req), null);
      return { body: {} };
    },
  }),
];
