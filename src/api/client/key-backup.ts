// Client-server API: server-side key backups (S:data/api/client-server/key_backup.yaml). Any
// process may serve them (Syn:docs/workers.md `room_keys/`).

import { isValidRoomId, MAX_IDENTIFIER_BYTES, utf8Length } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import type { RoomSessions } from '../../handlers/e2ee/key-backup.js';
import { Errors, MatrixError } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody } from './params.js';

/** Backups belong to full accounts: guests may not keep one (as Synapse). */
function backupOwner(req: RouteRequest): string {
  const requester = requesterOf(req);
  if (requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access not allowed');
  return requester.userId;
}

/** `?version=`: which backup the keys belong to (required). */
function versionParam(req: RouteRequest): string {
  const version = req.query.get('version');
  if (version === null) throw Errors.missingParam("Missing 'version'");
  return version;
}

function sessionsOf(value: unknown, where: string): RoomSessions {
  if (!isJsonObject(value)) throw Errors.badJson(`${where} must be an object`);
  const sessions = value.sessions;
  if (sessions === undefined) throw Errors.missingParam(`${where}: missing 'sessions'`);
  if (!isJsonObject(sessions)) throw Errors.badJson(`${where}: 'sessions' must be an object`);
  // Megolm session ids are 43 characters; no id of any kind is longer than 255 bytes.
  if (Object.keys(sessions).some((sessionId) => utf8Length(sessionId) > MAX_IDENTIFIER_BYTES)) {
    throw Errors.invalidParam(`${where}: a session id is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  }
  return sessions as Record<string, JsonObject>;
}

function roomsOf(body: JsonObject): Record<string, RoomSessions> {
  if (body.rooms === undefined) throw Errors.missingParam("Missing 'rooms'");
  if (!isJsonObject(body.rooms)) throw Errors.badJson("'rooms' must be an object");
  const rooms = Object.entries(body.rooms);
  const notRoomId = rooms.find(([roomId]) => !isValidRoomId(roomId));
  if (notRoomId) throw Errors.invalidParam(`'rooms' has a key that is not a room id`);
  return Object.fromEntries(rooms.map(([roomId, room]) => [roomId, sessionsOf(room, roomId)]));
}

const base = { resource: 'client', auth: 'user' } as const;

export const keyBackupRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/room_keys/version
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.version.create',
    method: 'POST',
    paths: clientPaths('/room_keys/version'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.createVersion(backupOwner(req), jsonBody(req)) }),
  }),
  // GET /_matrix/client/v3/room_keys/version
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.version.current',
    method: 'GET',
    paths: clientPaths('/room_keys/version'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.versionInfo(backupOwner(req), undefined) }),
  }),
  // GET /_matrix/client/v3/room_keys/version/{version}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.version.get',
    method: 'GET',
    paths: clientPaths('/room_keys/version/{version}'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.versionInfo(backupOwner(req), req.params.version!) }),
  }),
  // PUT /_matrix/client/v3/room_keys/version/{version}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.version.update',
    method: 'PUT',
    paths: clientPaths('/room_keys/version/{version}'),
    handle: async (req, { keyBackup }) => {
      await keyBackup.updateVersion(backupOwner(req), req.params.version!, jsonBody(req));
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/room_keys/version/{version}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.version.delete',
    method: 'DELETE',
    paths: clientPaths('/room_keys/version/{version}'),
    handle: async (req, { keyBackup }) => {
      await keyBackup.deleteVersion(backupOwner(req), req.params.version!);
      return { body: {} };
    },
  }),
  // PUT /_matrix/client/v3/room_keys/keys
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.put',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.putKeys(backupOwner(req), versionParam(req), roomsOf(jsonBody(req))) }),
  }),
  // PUT /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.put_room',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    handle: async (req, { keyBackup }) => {
      const roomId = req.params.roomId!;
      return { body: await keyBackup.putKeys(backupOwner(req), versionParam(req), { [roomId]: sessionsOf(jsonBody(req), 'The body') }) };
    },
  }),
  // PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.put_session',
    method: 'PUT',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    handle: async (req, { keyBackup }) => {
      const { roomId, sessionId } = req.params as { roomId: string; sessionId: string };
      return { body: await keyBackup.putKeys(backupOwner(req), versionParam(req), { [roomId]: { [sessionId]: jsonBody(req) } }) };
    },
  }),
  // GET /_matrix/client/v3/room_keys/keys
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.get',
    method: 'GET',
    paths: clientPaths('/room_keys/keys'),
    handle: async (req, { keyBackup }) => {
      const rooms = await keyBackup.getKeys(backupOwner(req), versionParam(req));
      return { body: { rooms: Object.fromEntries(Object.entries(rooms).map(([roomId, sessions]) => [roomId, { sessions }])) } };
    },
  }),
  // GET /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.get_room',
    method: 'GET',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    handle: async (req, { keyBackup }) => {
      const roomId = req.params.roomId!;
      const rooms = await keyBackup.getKeys(backupOwner(req), versionParam(req), roomId);
      return { body: { sessions: rooms[roomId] ?? {} } };
    },
  }),
  // GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.get_session',
    method: 'GET',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    handle: async (req, { keyBackup }) => {
      const { roomId, sessionId } = req.params as { roomId: string; sessionId: string };
      const key = (await keyBackup.getKeys(backupOwner(req), versionParam(req), roomId, sessionId))[roomId]?.[sessionId];
      if (!key) throw Errors.notFound('No room_keys found');
      return { body: key };
    },
  }),
  // DELETE /_matrix/client/v3/room_keys/keys
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.delete',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.deleteKeys(backupOwner(req), versionParam(req)) }),
  }),
  // DELETE /_matrix/client/v3/room_keys/keys/{roomId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.delete_room',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys/{roomId}'),
    handle: async (req, { keyBackup }) => ({ body: await keyBackup.deleteKeys(backupOwner(req), versionParam(req), req.params.roomId!) }),
  }),
  // DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
  defineRoute<ApiServices>({
    ...base,
    name: 'client.room_keys.keys.delete_session',
    method: 'DELETE',
    paths: clientPaths('/room_keys/keys/{roomId}/{sessionId}'),
    handle: async (req, { keyBackup }) => {
      const { roomId, sessionId } = req.params as { roomId: string; sessionId: string };
      return { body: await keyBackup.deleteKeys(backupOwner(req), versionParam(req), roomId, sessionId) };
    },
  }),
];
