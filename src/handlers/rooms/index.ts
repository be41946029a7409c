// Changing rooms: creation, membership, sending messages and state, redaction; and /sync.

import type { CoreDeps } from '../kernel/core.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import type { SyncSources } from '../sync/sync-sources.js';
import { MembershipHandler } from './membership.js';
import { RoomCreationHandler } from './room-creation.js';
import { RoomMessagesHandler } from './room-messages.js';
import { SyncHandler } from '../sync/sync.js';

export interface RoomServices {
  readonly membership: MembershipHandler;
  readonly roomCreation: RoomCreationHandler;
  readonly roomMessages: RoomMessagesHandler;
  readonly sync: SyncHandler;
}

export async function createRoomServices(
  core: CoreDeps,
  deps: { syncSources: SyncSources; rateLimits: RateLimits },
): Promise<RoomServices> {
  const membership = new MembershipHandler(core, deps.rateLimits);
  return {
    membership,
    roomCreation: new RoomCreationHandler(core, membership),
    roomMessages: new RoomMessagesHandler(core, membership, deps.rateLimits),
    sync: new SyncHandler(core, deps.syncSources),
  };
}
