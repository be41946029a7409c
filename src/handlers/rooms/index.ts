// Changing rooms: creation, membership, sending messages and state, redaction; and /sync.

import type { CoreDeps } from '../core.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RoomServices {}

export async function createRoomServices(_core: CoreDeps): Promise<RoomServices> {
  return {};
}
