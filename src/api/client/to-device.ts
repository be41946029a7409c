// Send-to-device messaging (S:data/api/client-server/to_device.yaml). Served by the to_device
// writer.

import { isJsonObject, type JsonObject } from '../../core/json.js';
import { requiredField } from '../../handlers/ephemeral/checks.js';
import type { ToDeviceMessages } from '../../handlers/ephemeral/to-device.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const toDeviceRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}
  defineRoute<ApiServices>({
    name: 'client.send_to_device',
    method: 'PUT',
    paths: clientPaths('/sendToDevice/{eventType}/{txnId}'),
    resource: 'client',
    servedBy: 'writer:to_device',
    auth: 'user',
    body: 'json',
    handle: async (req, services) => {
      const messages = parseMessages(requiredField(req.body as JsonObject, 'messages', 'object'));
      const requester = requesterOf(req);
      await services.toDevice.send(requester.userId, requester.deviceId, req.params.eventType!, req.params.txnId!, messages);
      return { body: {} };
    },
  }),
];

/** `messages`: user id → device id → content object. */
function parseMessages(messages: JsonObject): ToDeviceMessages {
  for (const [userId, byDevice] of Object.entries(messages)) {
    if (!isJsonObject(byDevice)) throw Errors.badJson(`messages.${userId} must be an object of device ids`);
    for (const [deviceId, content] of Object.entries(byDevice)) {
      if (!isJsonObject(content)) throw Errors.badJson(`messages.${userId}.${deviceId} must be an object`);
    }
  }
  return messages as ToDeviceMessages;
}
