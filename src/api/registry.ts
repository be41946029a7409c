// The route registry: every endpoint this server has, in one list. The HTTP router of each
// listener, `myelin routes`, the routing table of a worker deployment (the built-in router and
// `myelin proxy-config`) all read this list (and a test checks docs/workers.md against it);
// nothing else declares routes.

import type { RouteDefinition } from '../http/route.js';
import { accountDataRoutes } from './client/account-data.js';
import { accountRoutes } from './client/account.js';
import { capabilitiesRoutes } from './client/capabilities.js';
import { createRoomRoutes } from './client/create-room.js';
import { crossSigningRoutes } from './client/cross-signing.js';
import { devicesRoutes } from './client/devices.js';
import { directoryRoutes } from './client/directory.js';
import { eventContextRoutes } from './client/event-context.js';
import { filterRoutes } from './client/filter.js';
import { joinedRoomsRoutes } from './client/joined-rooms.js';
import { keyBackupRoutes } from './client/key-backup.js';
import { keysRoutes } from './client/keys.js';
import { loginRoutes } from './client/login.js';
import { logoutRoutes } from './client/logout.js';
import { mediaConfigRoutes } from './client/media-config.js';
import { membersRoutes } from './client/members.js';
import { membershipRoutes } from './client/membership.js';
import { messagePaginationRoutes } from './client/message-pagination.js';
import { presenceRoutes } from './client/presence.js';
import { profileRoutes } from './client/profile.js';
import { publicRoomsRoutes } from './client/public-rooms.js';
import { pushRulesRoutes } from './client/push-rules.js';
import { readMarkersRoutes } from './client/read-markers.js';
import { receiptsRoutes } from './client/receipts.js';
import { redactionRoutes } from './client/redaction.js';
import { registrationRoutes } from './client/registration.js';
import { roomEventRoutes } from './client/room-event.js';
import { roomSendRoutes } from './client/room-send.js';
import { roomStateRoutes } from './client/room-state.js';
import { syncRoutes } from './client/sync.js';
import { timestampToEventRoutes } from './client/timestamp-to-event.js';
import { toDeviceRoutes } from './client/to-device.js';
import { typingRoutes } from './client/typing.js';
import { userDirectoryRoutes } from './client/user-directory.js';
import { versionsRoutes } from './client/versions.js';
import { voipRoutes } from './client/voip.js';
import { wellKnownRoutes } from './client/well-known.js';
import { adminRegisterRoutes } from './admin/register.js';
import { serverKeysRoutes } from './keys/server-keys.js';
import { openIdRoutes } from './client/openid.js';
import { federationBackfillRoutes } from './federation/backfill.js';
import { federationEventAuthRoutes } from './federation/event-auth.js';
import { federationEventRoutes } from './federation/events.js';
import { federationOpenIdRoutes } from './federation/openid.js';
import { federationPublicRoomsRoutes } from './federation/public-rooms.js';
import { federationQueryRoutes } from './federation/query.js';
import { federationTransactionRoutes } from './federation/transactions.js';
import { federationVersionRoutes } from './federation/version.js';
import { userKeysRoutes } from './federation/user-keys.js';
import { federationMembershipRoutes } from './federation/membership.js';
import { healthRoutes } from './health.js';
import { replicationRoutes } from './replication.js';
import type { ApiServices } from './services.js';

export const ROUTES: readonly RouteDefinition<ApiServices>[] = [
  ...accountDataRoutes,
  ...accountRoutes,
  ...capabilitiesRoutes,
  ...createRoomRoutes,
  ...crossSigningRoutes,
  ...devicesRoutes,
  ...directoryRoutes,
  ...eventContextRoutes,
  ...filterRoutes,
  ...joinedRoomsRoutes,
  ...keyBackupRoutes,
  ...keysRoutes,
  ...loginRoutes,
  ...logoutRoutes,
  ...mediaConfigRoutes,
  ...membersRoutes,
  ...membershipRoutes,
  ...messagePaginationRoutes,
  ...presenceRoutes,
  ...profileRoutes,
  ...publicRoomsRoutes,
  ...pushRulesRoutes,
  ...readMarkersRoutes,
  ...receiptsRoutes,
  ...redactionRoutes,
  ...registrationRoutes,
  ...roomEventRoutes,
  ...roomSendRoutes,
  ...roomStateRoutes,
  ...syncRoutes,
  ...timestampToEventRoutes,
  ...toDeviceRoutes,
  ...typingRoutes,
  ...userDirectoryRoutes,
  ...versionsRoutes,
  ...voipRoutes,
  ...wellKnownRoutes,
  ...adminRegisterRoutes,
  ...openIdRoutes,
  ...serverKeysRoutes,
  ...federationVersionRoutes,
  ...federationTransactionRoutes,
  ...federationEventRoutes,
  ...federationEventAuthRoutes,
  ...federationBackfillRoutes,
  ...federationQueryRoutes,
  ...federationPublicRoomsRoutes,
  ...federationOpenIdRoutes,
  ...userKeysRoutes,
  ...federationMembershipRoutes,
  ...healthRoutes,
  ...replicationRoutes,
];
