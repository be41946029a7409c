// The worker cluster the end-to-end encryption client suites run against: two events persisters,
// two generic workers, and a stream-writer worker that also writes device_lists (so key uploads,
// device-list changes and to-device messages all cross processes).

import { startProcessCluster, type ProcessCluster } from './process-cluster.js';

export function startE2eeCluster(): Promise<ProcessCluster> {
  return startProcessCluster({
    mainConfig: {
      stream_writers: {
        events: ['persister1', 'persister2'],
        typing: 'ephemeral',
        to_device: 'ephemeral',
        account_data: 'ephemeral',
        receipts: 'ephemeral',
        device_lists: 'ephemeral',
      },
    },
  });
}
