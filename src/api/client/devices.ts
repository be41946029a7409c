// Client-server API: device management (S:data/api/client-server/device_management.yaml). Synapse
// routes these to a writer of the device_lists stream (deleting a device changes the user's
// device list).

import { isJsonObject } from '../../core/json.js';
import { deviceDisplayNameField, stringList } from '../../handlers/accounts/fields.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';

const SERVED_BY = 'writer:device_lists' as const;

function deviceIdParam(req: RouteRequest): string {
  return req.params.deviceId ?? '';
}

function bodyOf(req: RouteRequest) {
  return isJsonObject(req.body) ? req.body : {};
}

export const devicesRoutes = [
  // GET /_matrix/client/v3/devices
  defineRoute<ApiServices>({
    name: 'client.devices',
    method: 'GET',
    paths: clientPaths('/devices'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'user',
    handle: async (req, { devices }) => ({ body: { devices: await devices.list(requesterOf(req).userId) } }),
  }),
  // GET /_matrix/client/v3/devices/{deviceId}
  defineRoute<ApiServices>({
    name: 'client.devices.get',
    method: 'GET',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'user',
    handle: async (req, { devices }) => {
      const device = await devices.get(requesterOf(req).userId, deviceIdParam(req));
      if (!device) throw Errors.notFound('No device found');
      return { body: device };
    },
  }),
  // PUT /_matrix/client/v3/devices/{deviceId}
  defineRoute<ApiServices>({
    name: 'client.devices.update',
    method: 'PUT',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'user',
    handle: async (req, { devices }) => {
      const displayName = deviceDisplayNameField(bodyOf(req), 'display_name');
      if (!(await devices.rename(requesterOf(req).userId, deviceIdParam(req), displayName))) throw Errors.notFound('Unknown device');
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/devices/{deviceId}
  defineRoute<ApiServices>({
    name: 'client.devices.delete',
    method: 'DELETE',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'user',
    // Older clients send no body at all: the same as an empty one.
    body: 'json-optional',
    handle: async (req, { accountManagement, devices }) => {
      const requester = requesterOf(req);
      await accountManagement.reauthenticate(requester, { method: req.method, uri: req.path, body: bodyOf(req) });
      await devices.deleteDevices(requester.userId, [deviceIdParam(req)]);
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/delete_devices
  defineRoute<ApiServices>({
    name: 'client.devices.delete_many',
    method: 'POST',
    paths: clientPaths('/delete_devices'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { accountManagement, devices }) => {
      const requester = requesterOf(req);
      const body = bodyOf(req);
      // Checked before authentication so a malformed request does not start a session.
      if (body.devices !== undefined) stringList(body, 'devices');
      const { params } = await accountManagement.reauthenticate(requester, { method: req.method, uri: req.path, body });
      await devices.deleteDevices(requester.userId, stringList(params, 'devices'));
      return { body: {} };
    },
  }),
];
