// Reading rooms: state, members, single events, context, pagination, timestamp lookup, joined
// rooms; the room directory and aliases; profiles; the user directory.

import type { CoreDeps } from '../core.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RoomReadServices {}

export async function createRoomReadServices(_core: CoreDeps): Promise<RoomReadServices> {
  return {};
}
