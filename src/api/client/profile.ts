// Client-server API: profiles (S:data/api/client-server/profile.yaml). Reading needs no access
// token (Synapse's default `require_auth_for_profile_requests: false`).
//
// The spec lets `keyName` name any field; this server stores `displayname` and `avatar_url` only.
// Other well-formed names read as absent (404) and cannot be written (403), rather than being
// accepted and lost.

import { z } from 'zod';
import { utf8Length } from '../../core/identifiers.js';
import type { ProfileField } from '../../handlers/room-reads/profiles.js';
import { Errors, jsonObject, parseInput } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

const KEY_NAME = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const fieldPaths = clientPaths('/profile/{userId}/{keyName}');

const displayname = z.object({ displayname: z.string() });
const avatarUrl = z.object({ avatar_url: z.string() });

/** The path's field name checked against the spec's grammar; `undefined` for a field not stored here. */
function fieldOf(keyName: string): ProfileField | undefined {
  if (utf8Length(keyName) > 255) throw Errors.keyTooLarge('Profile key too long');
  if (!KEY_NAME.test(keyName)) throw Errors.invalidParam('Invalid profile key');
  return keyName === 'displayname' || keyName === 'avatar_url' ? keyName : undefined;
}

function writableFieldOf(keyName: string): ProfileField {
  const field = fieldOf(keyName);
  if (field === undefined) throw Errors.forbidden(`This server does not store the profile field ${keyName}`);
  return field;
}

export const profileRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/profile/{userId}
  defineRoute({
    name: 'client.profile.get',
    method: 'GET',
    paths: clientPaths('/profile/{userId}'),
    resource: 'client',
    handle: async ({ params }, { profiles }) => ({ body: await profiles.profile(params.userId) }),
  }),
  // GET /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute({
    name: 'client.profile.field.get',
    method: 'GET',
    paths: fieldPaths,
    resource: 'client',
    handle: async ({ params }, { profiles }) => {
      const field = fieldOf(params.keyName);
      if (field === undefined) throw Errors.notFound(`The user has no ${params.keyName}`);
      return { body: await profiles.field(params.userId, field) };
    },
  }),
  // PUT /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute({
    name: 'client.profile.field.put',
    method: 'PUT',
    paths: fieldPaths,
    resource: 'client',
    auth: 'guest',
    // `{<keyName>: <string>}`: which field depends on the path, so it is checked once the path is.
    body: jsonObject,
    handle: async ({ requester, params, body }, { profiles }) => {
      const field = writableFieldOf(params.keyName);
      const value = field === 'displayname' ? parseInput(displayname, body).displayname : parseInput(avatarUrl, body).avatar_url;
      await profiles.setField(requester, params.userId, field, value);
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/profile/{userId}/{keyName}
  defineRoute({
    name: 'client.profile.field.delete',
    method: 'DELETE',
    paths: fieldPaths,
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { profiles }) => {
      await profiles.setField(requester, params.userId, writableFieldOf(params.keyName), null);
      return { body: {} };
    },
  }),
];
