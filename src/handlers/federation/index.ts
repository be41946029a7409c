// The inbound side of federation, as the federation API routes use it: transactions (`/send`)
// with their PDUs and EDUs, the reads of a room's events and state, queries, and the room checks
// every room-scoped request makes (server ACL, origin in the room). Built once per process on
// the process's federation transport (client, keyring).

import type { FederationServices } from '../../federation/index.js';
import { componentLogger } from '../../util/log.js';
import type { CoreDeps } from '../kernel/core.js';
import type { EphemeralWriters } from '../ephemeral/index.js';
import type { RoomReadServices } from '../room-reads/index.js';
import { EduIntake, registerEphemeralEdus } from './edu-intake.js';
import { FederationEventReads } from './event-reads.js';
import { federationInbound, PduChecker } from './fetcher.js';
import type { FederationInbound } from './pdu-intake.js';
import { FederationQueries } from './queries.js';
import { RemoteRoomDirectory } from './remote-directory.js';
import { ServerAccess } from './server-access.js';
import { TransactionHandler } from './transactions.js';

export interface FederationApiServices {
  readonly serverAccess: ServerAccess;
  readonly transactions: TransactionHandler;
  readonly eventReads: FederationEventReads;
  readonly queries: FederationQueries;
  /** Outbound: another server's published room list, for our clients' `/publicRooms?server=`. */
  readonly remoteDirectory: RemoteRoomDirectory;
  /** EDU types register their handler here (`edus.register(type, handler)`). */
  readonly edus: EduIntake;
  /** What the events writer uses to fetch missing events and check them (`useFederation`). */
  readonly inbound: FederationInbound;
}

export function createFederationApiServices(
  core: CoreDeps,
  deps: {
    transport: Pick<FederationServices, 'client' | 'keyring'>;
    ephemeralWriters: Pick<EphemeralWriters, 'typing' | 'receipts' | 'presence'>;
    reads: Pick<RoomReadServices, 'roomDirectory' | 'profiles'>;
  },
): FederationApiServices {
  const log = componentLogger(core.log, 'federation.inbound');
  const serverAccess = new ServerAccess(core);
  const checker = new PduChecker(deps.transport.keyring);
  const edus = new EduIntake(core.serverName, log);
  registerEphemeralEdus(edus, { core, writers: deps.ephemeralWriters, access: serverAccess });
  return {
    serverAccess,
    transactions: new TransactionHandler(core, { access: serverAccess, checker, edus, log }),
    eventReads: new FederationEventReads(core, serverAccess),
    queries: new FederationQueries(core, deps.reads.roomDirectory, deps.reads.profiles),
    remoteDirectory: new RemoteRoomDirectory(deps.transport.client),
    edus,
    inbound: federationInbound(deps.transport.client, checker),
  };
}
