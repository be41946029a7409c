// Reading rooms: state, members, single events, context, pagination, timestamp lookup, joined
// rooms; the room directory and aliases; profiles; the user directory.
//
// None of this area writes a stream. Room events it causes (a profile change's member events, a
// canonical alias rewritten after an alias is deleted) go through the events writer; aliases, the
// published flag and profiles are plain rows that every process reads from the database.

import type { BackfillApi } from '../federation/backfill.js';
import type { RemoteQueries } from '../federation/remote-queries.js';
import type { CoreDeps } from '../kernel/core.js';
import { RoomAccess } from './access.js';
import { RoomDirectory, type RoomDirectoryApi } from './directory.js';
import { Profiles, type ProfilesApi } from './profiles.js';
import { RoomReads, type RoomReadsApi } from './reads.js';
import { Timeline } from './timeline.js';
import { UserDirectory, type UserDirectoryApi } from './user-directory.js';

export interface RoomReadServices {
  readonly roomReads: RoomReadsApi;
  readonly roomDirectory: RoomDirectoryApi;
  readonly profiles: ProfilesApi;
  readonly userDirectory: UserDirectoryApi;
}

export async function createRoomReadServices(
  core: CoreDeps,
  deps: { remote?: RemoteQueries | undefined; backfiller?: BackfillApi | undefined } = {},
): Promise<RoomReadServices> {
  const access = new RoomAccess(core);
  return {
    roomReads: new RoomReads(core, access, new Timeline(core, access), deps.backfiller),
    roomDirectory: new RoomDirectory(core, core.stores.directory, access, deps.remote),
    profiles: new Profiles(core, deps.remote),
    userDirectory: new UserDirectory(core, core.stores.userDirectory),
  };
}
