// Every schema migration, in order. Add a new file per migration and list it here; never edit a
// migration that has been released.

import type { Migration } from './migration.js';
import { serverMeta } from './0001-server-meta.js';
import { clientServer } from './0002-client-server.js';
import { eventsSequence } from './0003-events-sequence.js';
import { accounts } from './0010-accounts.js';
import { ephemeral } from './0020-ephemeral.js';
import { e2ee } from './0040-e2ee.js';
import { streamSequences } from './0041-stream-sequences.js';
import { serverKeys } from './0050-server-keys.js';
import { eventGraph } from './0051-event-graph.js';
import { federationSender } from './0052-federation-sender.js';
import { remoteDeviceLists } from './0053-remote-device-lists.js';

export const SCHEMA: readonly Migration[] = [
  serverMeta,
  clientServer,
  eventsSequence,
  accounts,
  ephemeral,
  e2ee,
  streamSequences,
  serverKeys,
  eventGraph,
  federationSender,
  remoteDeviceLists,
];
