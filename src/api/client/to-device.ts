// Send-to-device messaging (S:data/api/client-server/to_device.yaml). Served by the to_device
// writer.

import { z } from 'zod';
import { jsonObject } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const toDeviceRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}
  defineRoute({
    name: 'client.send_to_device',
    method: 'PUT',
    paths: clientPaths('/sendToDevice/{eventType}/{txnId}'),
    resource: 'client',
    servedBy: 'writer:to_device',
    auth: 'guest',
    // `messages`: user id → device id (or `*`) → content object.
    body: z.object({ messages: z.record(z.string(), z.record(z.string(), jsonObject)) }),
    handle: async ({ requester, params, body }, services) => {
      await services.toDevice.send(requester.userId, requester.deviceId, params.eventType, params.txnId, body.messages);
      return { body: {} };
    },
  }),
];
