// Client-server API: server-side key backups (S:data/api/client-server/key_backup.yaml). Any
// process may serve them (Syn:docs/workers.md `room_keys/`). Backups belong to full accounts:
// guests may not keep one (as Synapse), hence `auth: 'user'`.

import { z } from 'zod';
import { isValidRoomId, MAX_IDENTIFIER_BYTES, utf8Length } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { checked, Errors, jsonObject } from '../../errors.js';
import { requiredStringParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/** `?version=`: which backup the keys belong to (required). */
const versionOf = (query: URLSearchParams) => requiredStringParam(query, 'version');

// Megolm session ids are 43 characters; no id of any kind is longer than 255 bytes.
const sessionId = checked(
  z.string(),
  (id) => utf8Length(id) <= MAX_IDENTIFIER_BYTES,
  'M_INVALID_PARAM',
  `a session id is longer than ${MAX_IDENTIFIER_BYTES} bytes`,
);
const roomId = checked(z.string(), isValidRoomId, 'M_INVALID_PARAM', 'a key is not a room id');

/** `{sessions: {<session id>: <key data>}}`: each key's data is checked by the handler (`checkRoomKey`). */
const roomSessions = z.object({ sessions: z.record(sessionId, jsonObject) });

const route = { resource: 'client', auth: 'user' } as const;

export const keyBackupRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/room_keys/version
  defineRoute({
    ...route,
    name: 'client.room_keys.version.create',
    method: 'POST',
    paths: clientPaths('/room_keys/version'),
    // `algorithm` and `auth_data`, checked by the handler (as for an update).
    body: jsonObject,
    handle: async ({ requester, body }, { keyBackup }) => ({ body: await keyBackup.createVersion(requester.userId, body) }),
  }),
  // GET /_matrix/client/v3/room_keys/version
  defineRoute({
    ...route,
    name: 'client.room_keys.version.current',
    method: 'GET',
    paths: clientPaths('/room_keys/version'),
    handle: async ({ requester }, { keyBackup }) => ({ body: await keyBackup.versionInfo(requester.userId, undefined) }),
  }),
  // GET /_matrix/client/v3/room_keys/version/{version}
  defineRoute({
    ...route,
    name: 'client.room_keys.version.get',
    method: 'GET',
    paths: clientPaths('/room_keys/version/{version}'),
    handle: async ({ requester, params }, { keyBackup }) => ({ body: await keyBackup.versionInfo(requester.userId, params.version) }),
  }),
  // PUT /_matrix/client/v3/room_keys/version/{version}
  defineRoute({
    ...route,
    name: 'client.room_keys.version.update',
    method: 'PUT',
    paths: clientPaths('/room_keys/version/{version}'),
    body: jsonObject,
    handle: async ({ requester, params, body }, { keyBackup }) => {
      await keyBackup.updateVersion(requester.userId, params.version, body);
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/room_keys/version/{version}
  defineRoute({
    ...route,
    name: 'client.room_keys.version.delete',
    method: 'DELETE',
    paths: clientPaths('/room_keys/version/{version}'),
    handle: async ({ requester, params }, { keyBackup }) => {
      await keyBackup.deleteVersion(requester.userId, params.version);
      return { body: {} };
    },
  }),
  // PUT /_matrix/client/v3/room_keys/keys
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.put',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys'),
    body: z.object({ rooms: z.record(roomId, roomSessions) }),
    handle: async ({ requester, query, body }, { keyBackup }) => {
      const rooms = Object.fromEntries(Object.entries(body.rooms).map(([id, room]) => [id, room.sessions]));
      return { body: await keyBackup.putKeys(requester.userId, versionOf(query), rooms) };
    },
  }),
  // PUT /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.put_room',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    body: roomSessions,
    handle: async ({ requester, params, query, body }, { keyBackup }) => ({
      body: await keyBackup.putKeys(requester.userId, versionOf(query), { [params.roomId]: body.sessions }),
    }),
  }),
  // PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.put_session',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    // The key data itself, checked by the handler.
    body: jsonObject,
    handle: async ({ requester, params, query, body }, { keyBackup }) => ({
      body: await keyBackup.putKeys(requester.userId, versionOf(query), { [params.roomId]: { [params.sessionId]: body } }),
    }),
  }),
  // GET /_matrix/client/v3/room_keys/keys
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.get',
    method: 'GET',
    paths: clientPaths('/room_keys/keys'),
    handle: async ({ requester, query }, { keyBackup }) => {
      const rooms = await keyBackup.getKeys(requester.userId, versionOf(query));
      return { body: { rooms: Object.fromEntries(Object.entries(rooms).map(([id, sessions]) => [id, { sessions }])) } };
    },
  }),
  // GET /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.get_room',
    method: 'GET',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    handle: async ({ requester, params, query }, { keyBackup }) => {
      const rooms = await keyBackup.getKeys(requester.userId, versionOf(query), params.roomId);
      return { body: { sessions: rooms[params.roomId] ?? {} } };
    },
  }),
  // GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.get_session',
    method: 'GET',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    handle: async ({ requester, params, query }, { keyBackup }) => {
      const { roomId, sessionId } = params;
      const rooms = await keyBackup.getKeys(requester.userId, versionOf(query), roomId, sessionId);
      const key: JsonObject | undefined = rooms[roomId]?.[sessionId];
      if (!key) throw Errors.notFound('No room_keys found');
      return { body: key };
    },
  }),
  // DELETE /_matrix/client/v3/room_keys/keys
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.delete',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys'),
    handle: async ({ requester, query }, { keyBackup }) => ({ body: await keyBackup.deleteKeys(requester.userId, versionOf(query)) }),
  }),
  // DELETE /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.delete_room',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    handle: async ({ requester, params, query }, { keyBackup }) => ({
      body: await keyBackup.deleteKeys(requester.userId, versionOf(query), params.roomId),
    }),
  }),
  // DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute({
    ...route,
    name: 'client.room_keys.keys.delete_session',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    handle: async ({ requester, params, query }, { keyBackup }) => ({
      body: await keyBackup.deleteKeys(requester.userId, versionOf(query), params.roomId, params.sessionId),
    }),
  }),
];
