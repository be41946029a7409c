// Incoming `m.direct_to_device` EDUs (spec: server-server API §Send-to-device messaging): the
// sender must belong to the origin, only our users' devices receive (core's `parseEdu` checks
// both), `*` means every device of the recipient, and a (origin, message_id) is delivered once —
// a transaction the origin retries, or the same EDU sent again, delivers nothing more. Delivery is
// the to-device writer's (worker mode: over RPC), so /sync shows the messages as local ones.

import { parseEdu } from '../../core/edus.js';
import type { JsonObject } from '../../core/json.js';
import type { Logger } from '../../util/log.js';
import type { RateLimiter } from '../kernel/rate-limit.js';
import type { ToDeviceWriterApi } from '../ephemeral/to-device.js';
import type { EduHandler } from './device-list-updates.js';

export interface DirectToDeviceDeps {
  serverName: string;
  writer: ToDeviceWriterApi;
  log?: Logger;
  /**
   * `rc_key_requests`: room key requests (`m.room_key_request`) to each other user, counted per
   * requesting device of the sender; beyond it they are dropped (as Synapse does), since a flood
   * of them makes every recipient's clients work.
   */
  keyRequests?: RateLimiter;
}

export function directToDeviceHandler(deps: DirectToDeviceDeps): EduHandler {
  return async (origin, content) => {
    const parsed = parseEdu({ edu_type: 'm.direct_to_device', content }, { origin, localServerName: deps.serverName });
    if (!parsed.ok || parsed.edu.type !== 'm.direct_to_device') {
      deps.log?.info({ origin, error: parsed.ok ? undefined : parsed.error.message }, 'm.direct_to_device dropped');
      return;
    }
    if (parsed.skipped.length > 0) deps.log?.info({ origin, skipped: parsed.skipped }, 'parts of an m.direct_to_device were left out');
    const { sender, eventType, messageId, messages } = parsed.edu;
    const byUser: Record<string, Record<string, JsonObject>> = {};
    for (const [userId, devices] of messages) {
      if (eventType === 'm.room_key_request' && userId !== sender && deps.keyRequests && !allowKeyRequest(deps, sender, devices)) {
        deps.log?.info({ origin, sender, recipient: userId }, 'a room key request dropped: rc_key_requests');
        continue;
      }
      byUser[userId] = Object.fromEntries(devices);
    }
    if (Object.keys(byUser).length === 0) return;
    await deps.writer.receiveRemote(origin, sender, eventType, messageId, byUser);
  };
}

/** One room key request to one user, counted against its requesting device (rc_key_requests). */
function allowKeyRequest(deps: DirectToDeviceDeps, sender: string, devices: ReadonlyMap<string, JsonObject>): boolean {
  const requestingDevice = [...devices.values()].map((content) => content.requesting_device_id).find((id) => typeof id === 'string') ?? '';
  return deps.keyRequests!.decide(`${sender}\u0000${requestingDevice}`).allowed;
}
