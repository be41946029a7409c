// Client-server API: device management (S:data/api/client-server/device_management.yaml). Synapse
// routes these to a writer of the device_lists stream (deleting a device changes the user's
// device list).

import { z } from 'zod';
import { deviceDisplayNameField, stringList } from '../../handlers/accounts/fields.js';
import { Errors, jsonObject, parseInput } from '../../errors.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObjectWith, optionalBody } from '../schemas.js';

const SERVED_BY = 'writer:device_lists' as const;

/** The devices to delete; required, but it may come from the user-interactive auth session. */
const devicesField = z.object({ devices: stringList });

export const devicesRoutes = [
  // GET /_matrix/client/v3/devices
  defineRoute({
    name: 'client.devices',
    method: 'GET',
    paths: clientPaths('/devices'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'guest',
    handle: async ({ requester }, { devices }) => ({ body: { devices: await devices.list(requester.userId) } }),
  }),
  // GET /_matrix/client/v3/devices/{deviceId}
  defineRoute({
    name: 'client.devices.get',
    method: 'GET',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'guest',
    handle: async ({ requester, params }, { devices }) => {
      const device = await devices.get(requester.userId, params.deviceId);
      if (!device) throw Errors.notFound('No device found');
      return { body: device };
    },
  }),
  // PUT /_matrix/client/v3/devices/{deviceId}
  defineRoute({
    name: 'client.devices.update',
    method: 'PUT',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'guest',
    body: z.object({ display_name: deviceDisplayNameField }),
    handle: async ({ requester, params, body }, { devices }) => {
      if (!(await devices.rename(requester.userId, params.deviceId, body.display_name))) throw Errors.notFound('Unknown device');
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/devices/{deviceId}
  defineRoute({
    name: 'client.devices.delete',
    method: 'DELETE',
    paths: clientPaths('/devices/{deviceId}'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'guest',
    // Only `auth` (user-interactive auth); older clients send no body at all, the same as an empty one.
    body: optionalBody(jsonObject),
    handle: async ({ requester, params, method, path, body }, { accountManagement, devices }) => {
      await accountManagement.reauthenticate(requester, { method, uri: path, body });
      await devices.deleteDevices(requester.userId, [params.deviceId]);
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/delete_devices
  defineRoute({
    name: 'client.devices.delete_many',
    method: 'POST',
    paths: clientPaths('/delete_devices'),
    resource: 'client',
    servedBy: SERVED_BY,
    auth: 'guest',
    // `devices` is checked before authentication, so a malformed request does not start a
    // session; a follow-up carrying only `auth` takes it from the session.
    body: optionalBody(jsonObjectWith({ devices: stringList.optional() })),
    handle: async ({ requester, method, path, body }, { accountManagement, devices }) => {
      const { params } = await accountManagement.reauthenticate(requester, { method, uri: path, body });
      await devices.deleteDevices(requester.userId, parseInput(devicesField, params).devices);
      return { body: {} };
    },
  }),
];
