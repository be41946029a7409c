// Changing rooms: creation, membership, sending messages and state, redaction; and /sync.

import type { CoreDeps } from '../core.js';
import { MembershipHandler } from './membership.js';
import { RoomCreationHandler } from './room-creation.js';
import { RoomMessagesHandler } from './room-messages.js';

export interface RoomServices {
  readonly membership: MembershipHandler;
  readonly roomCreation: RoomCreationHandler;
  readonly roomMessages: RoomMessagesHandler;
}

export async function createRoomServices(core: CoreDeps): Promise<RoomServices> {
  const membership = new MembershipHandler(core);
  return {
    membership,
    roomCreation: new RoomCreationHandler(core, membership),
    roomMessages: new RoomMessagesHandler(core, membership),
  };
}
