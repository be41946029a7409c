// What API route handlers receive: the shared core plus every handler area. Each process composes
// the services its role needs (src/process/services.ts) and passes them in; there is no global
// service locator.

import type { AccountServices } from '../handlers/accounts/index.js';
import type { CoreDeps } from '../handlers/kernel/core.js';
import type { E2eeServices } from '../handlers/e2ee/index.js';
import type { EphemeralServices } from '../handlers/ephemeral/index.js';
import type { RoomReadServices } from '../handlers/room-reads/index.js';
import type { RoomServices } from '../handlers/rooms/index.js';
import type { FederationServices } from '../federation/index.js';
import type { FederationApiServices } from '../handlers/federation/index.js';
import type { RpcServer } from '../replication/rpc.js';
import type { EduHandler } from '../handlers/federation/device-list-updates.js';

export type ApiServices = CoreDeps &
  AccountServices &
  EphemeralServices &
  E2eeServices &
  RoomReadServices &
  RoomServices & {
    rpcServer?: RpcServer;
    federation: FederationServices;
    federationApi: FederationApiServices;
    /** Handlers of the E2EE EDUs of an inbound transaction, by `edu_type` (for `/send`'s EDU registry). */
    e2eeEdus: Readonly<Record<'m.device_list_update' | 'm.signing_key_update' | 'm.direct_to_device', EduHandler>>;
  };
