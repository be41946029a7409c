// Changing rooms: creation, membership, sending messages and state, redaction; and /sync.

import type { CoreDeps } from '../kernel/core.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import type { SyncSources } from '../sync/sync-sources.js';
import { MembershipHandler } from './membership.js';
import { RoomCreationHandler } from './room-creation.js';
import { RoomMessagesHandler } from './room-messages.js';
import { SyncHandler } from '../sync/sync.js';
import type { FederationClient } from '../../federation/client.js';
import type { Keyring } from '../../federation/keyring.js';
import { RemoteMembership } from '../federation/remote-membership.js';
import type { RemoteQueries } from '../federation/remote-queries.js';
import { ResidentMembership } from '../federation/resident-membership.js';

export interface RoomServices {
  readonly membership: MembershipHandler;
  readonly roomCreation: RoomCreationHandler;
  readonly roomMessages: RoomMessagesHandler;
  readonly sync: SyncHandler;
  /** Membership handshakes other servers make with us (make_join, send_join, invites...). */
  readonly residentMembership: ResidentMembership;
}

export async function createRoomServices(
  core: CoreDeps,
  deps: {
    syncSources: SyncSources;
    rateLimits: RateLimits;
    federation: { client: Pick<FederationClient, 'request'>; keyring: Pick<Keyring, 'getVerifyKeys'> };
    remoteQueries: Pick<RemoteQueries, 'resolveAlias'>;
  },
): Promise<RoomServices> {
  const remote = new RemoteMembership(core, deps.federation.client, deps.federation.keyring, deps.remoteQueries);
  const membership = new MembershipHandler(core, deps.rateLimits, remote);
  return {
    membership,
    roomCreation: new RoomCreationHandler(core, membership),
    roomMessages: new RoomMessagesHandler(core, membership, deps.rateLimits),
    sync: new SyncHandler(core, deps.syncSources),
    residentMembership: new ResidentMembership(core, deps.federation.keyring),
  };
}
