// What a process of a worker deployment needs beyond a single process: the Redis replication bus
// (with catch-up from the database), replication HTTP to the other instances' writers (and serving
// its own), stream positions counted per writer, and read-your-writes after each remote write.

import type { ApiServices } from '../api/services.js';
import type { Config } from '../config/types.js';
import type { Topology } from '../config/roles.js';
import type { StreamRow } from '../streams/bus.js';
import type { StreamCatchUp } from '../replication/catch-up.js';
import { RedisBus } from '../replication/redis-bus.js';
import { RpcClient, RpcServer, type ReplicationPositions } from '../replication/rpc.js';
import { remoteWriter } from '../replication/rpc-proxy.js';
import type { Database } from '../storage/database.js';
import { StreamPositionTracker } from '../streams/positions.js';
import { STREAM_NAMES, type StreamName } from '../streams/streams.js';
import { componentLogger, type Logger } from '../util/log.js';
import { databaseCatchUp, startingPositions } from './catch-up.js';
import { placementFor, type WriterPlacement } from './placement.js';
import type { ClusterWiring } from './services.js';

export interface Cluster {
  bus: RedisBus;
  placement: WriterPlacement;
  wiring: ClusterWiring;
  /** Hands the composed services to the parts that needed them later than they were built. */
  attach(services: ApiServices): void;
}

/** How long a request waits, after a remote write, for this process to see it. */
const READ_YOUR_WRITES_TIMEOUT_MS = 5_000;

export async function joinCluster(config: Config, db: Database, topology: Topology, log: Logger): Promise<Cluster> {
  const instanceName = topology.instanceName;
  const tracker = new StreamPositionTracker((stream) => topology.writers[stream]);
  const written = (): Array<{ stream: StreamName; position: number }> =>
    STREAM_NAMES.filter((stream) => topology.writers[stream].includes(instanceName)).map((stream) => ({
      stream,
      position: tracker.of(stream, instanceName),
    }));
  const writtenPositions = (): ReplicationPositions => {
    const out: ReplicationPositions = {};
    for (const { stream, position } of written()) out[stream] = { [instanceName]: position };
    return out;
  };

  let services: ApiServices | undefined;
  const rpcClient = new RpcClient({
    instanceMap: topology.instanceMap,
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
  const placement = placementFor(topology, (instance, prefix, methods) => remoteWriter(rpcClient, instance, prefix, methods as never));

  // The catch-up reads through caches that exist only once the services are built; until then a
  // catch-up fails and the bus retries it.
  let catchUp: StreamCatchUp | undefined;
  const lateCatchUp: StreamCatchUp = {
    writtenStreams: written,
    rowsBetween(stream, instance, from, to): Promise<StreamRow[]> {
      if (!catchUp) return Promise.reject(new Error('not started yet'));
      return catchUp.rowsBetween(stream, instance, from, to);
    },
  };
  const initialPositions = await startingPositions(db, placement);
  for (const { stream, instance, position } of initialPositions) tracker.observe(stream, instance, position);
  const bus = new RedisBus({
    serverName: config.server_name,
    instanceName,
    redis: config.redis,
    log,
    userIpChannel: instanceName === topology.runBackgroundTasksOn,
    catchUp: lateCatchUp,
    initialPositions,
  });

  async function waitForWriter(instance: string, positions: ReplicationPositions): Promise<void> {
    // Without Redis the write cannot reach this process's view now; the client still gets its
    // answer (the write is durable), and the catch-up after reconnecting brings it here.
    if (!services || !bus.connected) return;
    const wanted: Array<{ stream: StreamName; position: number }> = [];
    for (const [stream, byInstance] of Object.entries(positions)) {
      const position = byInstance[instance];
      if (position !== undefined && (STREAM_NAMES as readonly string[]).includes(stream)) wanted.push({ stream: stream as StreamName, position });
    }
    await services.notifier.waitForWriters(instance, wanted, READ_YOUR_WRITES_TIMEOUT_MS);
  }

  return {
    bus,
    placement,
    wiring: { bus, tracker, rpcClient, rpcServer },
    attach(composed) {
      services = composed;
      catchUp = databaseCatchUp({
        db,
        placement,
        eventCache: composed.eventCache,
        memberships: composed.memberships,
        rpc: rpcClient,
        written,
      });
    },
  };
}
