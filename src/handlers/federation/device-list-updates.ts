// Incoming device-list EDUs (spec: server-server API §Device Management, §End-to-End Encryption):
// `m.device_list_update` (one device of a remote user changed or was deleted; applied on the
// cached list when its `prev_id` are known, else the list is fetched again with `/user/devices`)
// and `m.signing_key_update` (a remote user's master or self-signing key). Both go to the
// device_lists writer of the user (worker mode: over RPC), which writes the cache and a
// device_lists stream row, so our users sharing a room with the remote user see them in
// `device_lists.changed` of /sync.
//
// Each handler takes the EDU `content` of a transaction from `origin` and checks it with core's
// `parseEdu` (the user must belong to the origin); a malformed EDU is dropped (logged), as the
// spec wants EDUs that cannot be processed ignored.

import { parseEdu } from '../../core/edus.js';
import type { JsonObject } from '../../core/json.js';
import type { Logger } from '../../util/log.js';
import type { DeviceListsWriterApi } from '../e2ee/device-lists.js';

export type EduHandler = (origin: string, content: JsonObject) => Promise<void>;

export interface DeviceListEduDeps {
  serverName: string;
  writer: DeviceListsWriterApi;
  log?: Logger;
}

/** `m.device_list_update` from `origin`. */
export function deviceListUpdateHandler(deps: DeviceListEduDeps): EduHandler {
  return async (origin, content) => {
    const parsed = parseEdu({ edu_type: 'm.device_list_update', content }, { origin, localServerName: deps.serverName });
    if (!parsed.ok || parsed.edu.type !== 'm.device_list_update') {
      deps.log?.info({ origin, error: parsed.ok ? undefined : parsed.error.message }, 'm.device_list_update dropped');
      return;
    }
    const edu = parsed.edu;
    await deps.writer.remoteDeviceListUpdate({
      userId: edu.userId,
      deviceId: edu.deviceId,
      deviceDisplayName: edu.deviceDisplayName ?? null,
      streamId: edu.streamId,
      prevIds: [...edu.prevIds],
      deleted: edu.deleted,
      keys: edu.keys ?? null,
    });
  };
}

/** `m.signing_key_update` from `origin`. */
export function signingKeyUpdateHandler(deps: DeviceListEduDeps): EduHandler {
  return async (origin, content) => {
    const parsed = parseEdu({ edu_type: 'm.signing_key_update', content }, { origin, localServerName: deps.serverName });
    if (!parsed.ok || parsed.edu.type !== 'm.signing_key_update') {
      deps.log?.info({ origin, error: parsed.ok ? undefined : parsed.error.message }, 'm.signing_key_update dropped');
      return;
    }
    const edu = parsed.edu;
    await deps.writer.remoteSigningKeyUpdate(edu.userId, edu.masterKey ?? null, edu.selfSigningKey ?? null);
  };
}
