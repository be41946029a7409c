// End-to-end encryption, server side: device keys, one-time and fallback keys, the device_lists
// stream, cross-signing, and key backups. The server never sees plaintext: it stores keys, serves
// them and tells users when to fetch them again.
//
// The device_lists stream has one writer (`DeviceListsWriter`), the only code that writes published
// keys and the stream's rows; it is reached through `DeviceListsWriterApi` (plain JSON), so worker
// mode can put an RPC in between. Everything else here only reads, except one-time key claims and
// backups, which are plain rows any process may write.

import { localWriters, type WriterSource } from '../../streams/writer-source.js';
import { componentLogger } from '../../util/log.js';
import type { DeviceHandler } from '../accounts/devices.js';
import type { CoreDeps } from '../kernel/core.js';
import type { E2eeSyncSources } from '../sync/sync-sources.js';
import { CrossSigningHandler } from './cross-signing.js';
import { DeviceListChanges, DeviceListsWriter, type DeviceListsWriterApi } from './device-lists.js';
import { KeyBackupHandler } from './key-backup.js';
import { KeysHandler } from './keys.js';
import { RemoteUserTracking } from './remote-keys.js';
import { serverNameOf } from '../../core/identifiers.js';
import type { FederationClient } from '../../federation/client.js';

export interface E2eeServices {
  /** `/keys/upload|query|claim|changes`. */
  readonly deviceKeys: KeysHandler;
  /** Whether a cross-signing upload needs user-interactive authentication. */
  readonly crossSigning: CrossSigningHandler;
  /** `/room_keys/...`. */
  readonly keyBackup: KeyBackupHandler;
  /** The device_lists writer (cross-signing keys and signatures are stored through it). */
  readonly deviceListsWriter: DeviceListsWriterApi;
  /** What /sync reads: device-list changes, one-time key counts, unused fallback keys. */
  readonly e2eeSyncSources: E2eeSyncSources;
  /** Waits for device-list announcements of deletions still in flight (process shutdown). */
  closeE2ee(): Promise<void>;
}

/**
 * Where the device_lists writer lives: here or in other processes (worker mode; with several
 * writers, each writes the users that hash to it). By default, here.
 */
export async function createE2eeServices(
  core: CoreDeps,
  deps: {
    devices: DeviceHandler;
    writers?: WriterSource<{ device_lists: DeviceListsWriterApi }>;
    /** Signed requests to other servers (their users' keys); absent: they are in `failures`. */
    federation?: Pick<FederationClient, 'request'>;
  },
): Promise<E2eeServices> {
  const { transactions, bus, instanceName, now, notifier } = core;
  const log = componentLogger(core.log, 'e2ee');
  const stores = {
    keys: core.stores.deviceKeys,
    crossSigning: core.stores.crossSigning,
    backups: core.stores.keyBackups,
    remoteDevices: core.stores.remoteDeviceLists,
  };
  const tracking = new RemoteUserTracking({ serverName: core.serverName, memberships: core.memberships, roomState: core.roomState });
  const federation = deps.federation;
  const writer = await (deps.writers ?? localWriters()).writer('device_lists', async () => {
    const local = await DeviceListsWriter.create({
      transactions,
      keys: stores.keys,
      crossSigning: stores.crossSigning,
      users: core.stores.users,
      memberships: core.memberships,
      bus,
      instanceName,
      now,
      positions: core.positions,
      remoteDevices: stores.remoteDevices,
      tracking,
      eventsPosition: () => notifier.currentPositions().events,
      log,
      ...(federation
        ? {
            fetchUserDevices: (userId: string, timeoutMs: number) =>
              federation.request(serverNameOf(userId)!, {
                method: 'GET',
                path: `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`,
                timeoutMs,
              }),
          }
        : {}),
    });
    // Syncs compare tokens against the notifier's positions: start it where the stream stands.
    notifier.advance('device_lists', local.currentPosition);
    return local;
  });

  const changes = new DeviceListChanges({
    keys: stores.keys,
    memberships: core.memberships,
    roomState: core.roomState,
    notifier,
  });
  const deviceKeys = new KeysHandler({
    serverName: core.serverName,
    transactions,
    keys: stores.keys,
    crossSigning: stores.crossSigning,
    users: core.stores.users,
    remoteDevices: stores.remoteDevices,
    tracking,
    ...(federation ? { federation } : {}),
    writer,
    changes,
    notifier,
  });

  // A deleted device's keys go in the deletion's own transaction. Announcing it is a stream write,
  // which must come after that transaction commits (or readers could fetch the keys again before
  // they are gone), so it is started here and not awaited: the writer waits for the deletion.
  const announcing = new Set<Promise<void>>();
  deps.devices.addDeletionStep(async (tx, userId, deviceIds) => {
    await stores.keys.deleteDeviceKeys(tx, userId, deviceIds);
    await stores.crossSigning.deleteSignaturesOfDevices(tx, userId, deviceIds);
    const announced = writer
      .devicesDeleted(userId, [...deviceIds])
      .catch((err: unknown) => log.error({ err, userId, deviceIds }, 'could not announce deleted devices on the device_lists stream'))
      .finally(() => announcing.delete(announced));
    announcing.add(announced);
  });

  return {
    deviceKeys,
    crossSigning: new CrossSigningHandler(stores.crossSigning),
    keyBackup: new KeyBackupHandler(stores.backups),
    deviceListsWriter: writer,
    e2eeSyncSources: {
      deviceLists: (userId, from, to) => changes.between(userId, from, to),
      oneTimeKeyCounts: (userId, deviceId) => deviceKeys.oneTimeKeyCounts(userId, deviceId),
      unusedFallbackKeyTypes: (userId, deviceId) => deviceKeys.unusedFallbackKeyTypes(userId, deviceId),
    },
    async closeE2ee() {
      await Promise.all([...announcing]);
    },
  };
}
