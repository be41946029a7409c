// What a process of a worker deployment needs beyond a single process, in the order a process is
// composed:
//   - before the kernel, the transport (`clusterTransport`): where each stream is written
//     (`stream_writers`), each writer's position as the database has it, and the Redis bus, built
//     but not started;
//   - after the kernel, the cluster (`joinCluster`): replication HTTP to the other instances'
//     writers (read-your-writes after each remote write) and for serving this process's own, and
//     the catch-up through which the bus fetches rows it missed. The bus is started with it once
//     the whole process is composed.
// Loaded only in worker mode: a single process never loads Redis or the replication client.

import type { Topology } from '../config/roles.js';
import type { Config } from '../config/types.js';
import type { StreamCatchUp } from '../replication/catch-up.js';
import { RedisBus } from '../replication/redis-bus.js';
import { RpcClient, RpcServer, type ReplicationPositions } from '../replication/rpc.js';
import type { Database } from '../storage/database.js';
import { createStores } from '../storage/stores.js';
import { StreamPositionTracker } from '../streams/positions.js';
import { STREAM_NAMES, type StreamName } from '../streams/streams.js';
import { componentLogger, type Logger } from '../util/log.js';
import { databaseCatchUp, startingPositions } from './catch-up.js';
import type { Kernel } from './kernel.js';
import { placementFor, type WriterPlacement } from './placement.js';
import { remoteWriters, type RemoteWriters } from './writers.js';

export interface ClusterTransport {
  readonly topology: Topology;
  readonly placement: WriterPlacement;
  /** Every writer's position, starting where the database says each stood. */
  readonly tracker: StreamPositionTracker;
  /** Not started yet: `bus.start(cluster.catchUp)` once the process is composed. */
  readonly bus: RedisBus;
}

export interface Cluster {
  /** Serves this process's writers to the others (the `replication` resource). */
  readonly rpcServer: RpcServer;
  /** Proxies to the writers of the other processes. */
  readonly remote: RemoteWriters;
  /** How the bus fetches the rows it missed, and announces the streams this process writes. */
  readonly catchUp: StreamCatchUp;
}

/** How long a request waits, after a remote write, for this process to see it. */
const READ_YOUR_WRITES_TIMEOUT_MS = 5_000;

/**
 * The transport, read before this process loads any state: the bus catches the process up from
 * where each writer stood in the database at this point.
 */
export async function clusterTransport(config: Config, db: Database, topology: Topology, log: Logger): Promise<ClusterTransport> {
  const placement = placementFor(topology);
  const tracker = new StreamPositionTracker((stream) => topology.writers[stream]);
  const initialPositions = await startingPositions(createStores(db), placement);
  for (const { stream, instance, position } of initialPositions) tracker.observe(stream, instance, position);
  const bus = new RedisBus({
    serverName: config.server_name,
    instanceName: topology.instanceName,
    redis: config.redis,
    log,
    userIpChannel: topology.instanceName === topology.runBackgroundTasksOn,
    initialPositions,
  });
  return { topology, placement, tracker, bus };
}

export function joinCluster(config: Config, kernel: Kernel, transport: ClusterTransport, log: Logger): Cluster {
  const { tracker, bus, placement } = transport;
  const instanceName = placement.instanceName;
  const written = (): Array<{ stream: StreamName; position: number }> =>
    STREAM_NAMES.filter((stream) => placement.writesHere(stream)).map((stream) => ({ stream, position: tracker.of(stream, instanceName) }));
  const writtenPositions = (): ReplicationPositions => {
    const out: ReplicationPositions = {};
    for (const { stream, position } of written()) out[stream] = { [instanceName]: position };
    return out;
  };

  async function waitForWriter(instance: string, positions: ReplicationPositions): Promise<void> {
    // Without Redis the write cannot reach this process's view now; the client still gets its
    // answer (the write is durable), and the catch-up after reconnecting brings it here.
    if (!bus.connected) return;
    const wanted: Array<{ stream: StreamName; position: number }> = [];
    for (const [stream, byInstance] of Object.entries(positions)) {
      const position = byInstance[instance];
      if (position !== undefined && (STREAM_NAMES as readonly string[]).includes(stream))
        wanted.push({ stream: stream as StreamName, position });
    }
    await kernel.notifier.waitForWriters(instance, wanted, READ_YOUR_WRITES_TIMEOUT_MS);
  }

  const rpcClient = new RpcClient({
    instanceMap: transport.topology.instanceMap,
    secret: config.worker_replication_secret,
    callerPositions: () => tracker.snapshot(),
    // Read-your-writes: answer the client only once this process has seen the writer's write.
    onCalleePositions: (instance, positions) => waitForWriter(instance, positions),
    log: componentLogger(log, 'replication.http'),
  });
  const rpcServer = new RpcServer({
    secret: config.worker_replication_secret,
    currentPositions: writtenPositions,
    log: componentLogger(log, 'replication.http'),
  });
  return {
    rpcServer,
    remote: remoteWriters(rpcClient),
    catchUp: databaseCatchUp({
      stores: kernel.stores,
      placement,
      eventCache: kernel.eventCache,
      memberships: kernel.memberships,
      rpc: rpcClient,
      written,
    }),
  };
}
