// The deployment as a whole: the main config plus every worker file of the workers directory,
// and from the route registry, which instances may serve each route and how to reach them. The
// supervisor, the built-in router, `myelin proxy-config` and `myelin check` all read this one
// picture, so they cannot disagree about who serves what.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROUTES } from '../api/registry.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import {
  MAIN_INSTANCE,
  checkWorkerRequirements,
  listenerServes,
  streamsWrittenBy,
  topologyOf,
  type Topology,
  type WorkerApp,
} from '../config/roles.js';
import type { ListenerConfig } from '../config/schema.js';
import type { RouteDefinition } from '../http/route.js';
import type { StreamName } from '../streams/streams.js';

export interface ClusterWorker {
  readonly name: string;
  readonly app: WorkerApp;
  /** The worker's own file in the workers directory. */
  readonly file: string;
  /** The shared files and the worker file, merged. */
  readonly config: Config;
}

export interface Cluster {
  readonly main: Config;
  /** The roles, as the shared config states them. */
  readonly topology: Topology;
  /** The workers directory that was read, if there is one. */
  readonly workersDir: string | undefined;
  readonly workers: readonly ClusterWorker[];
}

/** `workers/` beside the first config file, as the seed guide lays it out. */
export function defaultWorkersDir(config: Config): string {
  return join(dirname(config.origin.files[0]!), 'workers');
}

export interface LoadClusterOptions {
  /** The workers directory; the default one is read only when it exists. */
  workersDir?: string | undefined;
  warn?: (message: string) => void;
}

/**
 * Reads every `*.yaml` of the workers directory merged over main's files, as `myelin worker` will,
 * and checks the deployment as a whole. All problems are reported together as a ConfigError.
 */
export function loadCluster(main: Config, options: LoadClusterOptions = {}): Cluster {
  const problems: string[] = [];
  let workersDir = options.workersDir;
  if (workersDir !== undefined && !(existsSync(workersDir) && statSync(workersDir).isDirectory())) {
    throw new ConfigError([`${workersDir}: the workers directory does not exist`]);
  }
  if (workersDir === undefined && existsSync(defaultWorkersDir(main))) workersDir = defaultWorkersDir(main);

  // Shared files are read once per worker; their warnings are worth one line each, not one per worker.
  const warned = new Set<string>();
  const warn = (message: string) => {
    if (warned.has(message)) return;
    warned.add(message);
    (options.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(message);
  };

  const workers: ClusterWorker[] = [];
  const fileOfName = new Map<string, string>();
  for (const file of workersDir === undefined ? [] : workerFiles(workersDir)) {
    let config: Config;
    try {
      config = loadConfig([...main.origin.files, file], { warn });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems.filter((p) => !problems.includes(p)));
      continue;
    }
    const requirements = checkWorkerRequirements(config);
    problems.push(...requirements.filter((p) => !problems.includes(p)));
    const topology = topologyOf(config);
    if (topology.workerApp === undefined) continue;
    const name = topology.instanceName;
    const previous = fileOfName.get(name);
    if (previous !== undefined) {
      problems.push(
        `${file}: worker_name: ${JSON.stringify(name)} is already the name of the worker in ${previous}; every worker needs its own name`,
      );
      continue;
    }
    fileOfName.set(name, file);
    workers.push({ name, app: topology.workerApp, file, config });
  }

  const cluster: Cluster = { main, topology: topologyOf(main), workersDir, workers };
  if (problems.length === 0) problems.push(...clusterProblems(cluster));
  if (problems.length > 0) throw new ConfigError(problems);
  return cluster;
}

function workerFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => join(dir, name));
}

/** The listeners of an instance of the cluster. */
export function listenersOf(cluster: Cluster, instance: string): readonly ListenerConfig[] {
  if (instance === MAIN_INSTANCE) return cluster.main.listeners;
  return cluster.workers.find((w) => w.name === instance)?.config.worker_listeners ?? [];
}

/** Problems that only show with all the files together. */
function clusterProblems(cluster: Cluster): string[] {
  const problems: string[] = [];
  const { main, topology } = cluster;
  const where = (...path: (string | number)[]) => main.origin.describe(path);
  const names = new Set(cluster.workers.map((w) => w.name));
  const inDirectory =
    (cluster.workersDir === undefined ? 'there is no workers directory' : `no file in ${cluster.workersDir} has that worker_name`) +
    ' (when another service manager runs the workers, start main with --no-workers)';

  if (cluster.workers.length > 0 && main.database.name === 'sqlite3') {
    problems.push(
      `${where('database')}: workers need PostgreSQL: every process of a worker deployment shares one database, ` +
        'and SQLite cannot be shared',
    );
  }
  for (const [stream, writers] of Object.entries(topology.writers) as [StreamName, readonly string[]][]) {
    for (const writer of writers) {
      if (writer !== MAIN_INSTANCE && !names.has(writer)) {
        problems.push(`${where('stream_writers', stream)}: ${JSON.stringify(writer)} writes ${stream}, but ${inDirectory}`);
      }
    }
  }
  const duties: [string, readonly string[]][] = [
    ['federation_sender_instances', topology.federationSenderInstances],
    ['pusher_instances', topology.pusherInstances],
    ['initial_sync_instances', topology.initialSyncInstances],
  ];
  for (const [key, instances] of duties) {
    for (const instance of instances) {
      if (instance !== MAIN_INSTANCE && !names.has(instance))
        problems.push(`${where(key)}: ${JSON.stringify(instance)} is not a worker: ${inDirectory}`);
    }
  }
  if (topology.runBackgroundTasksOn !== MAIN_INSTANCE && !names.has(topology.runBackgroundTasksOn)) {
    problems.push(`${where('run_background_tasks_on')}: ${JSON.stringify(topology.runBackgroundTasksOn)} is not a worker: ${inDirectory}`);
  }
  for (const instance of topology.initialSyncInstances) {
    const worker = cluster.workers.find((w) => w.name === instance);
    if (worker && !(worker.app === 'generic_worker' && worker.config.worker_listeners.some((l) => serves(l, 'client')))) {
      problems.push(
        `${where('initial_sync_instances')}: ${instance} takes initial syncs, so it must be a generic worker with a \`client\` listener`,
      );
    }
  }
  // The shared config is what every process reads; a worker file that overrides a role key would
  // make processes disagree about who writes what.
  for (const worker of cluster.workers) {
    for (const key of ['stream_writers', 'instance_map'] as const) {
      if (worker.config.origin.fileOf([key]) === worker.file) {
        problems.push(`${worker.file}: ${key}: set it in the shared config, not in a worker file: every process must agree on it`);
      }
    }
  }

  // Once requests are routed (workers, or a router listener), every route must have somewhere to go.
  if (problems.length > 0) return problems; // routing a deployment that names missing workers says nothing new
  if (cluster.workers.length === 0 && !main.listeners.some((l) => listenerServes(l, 'router'))) return problems;
  const routing = new RoutingTable(cluster);
  const unreachable = new Map<string, RouteDefinition<never>[]>();
  for (const route of ROUTES) {
    if (!isPublicRoute(route) || !routing.isServed(route.resource)) continue;
    const candidates = routing.candidates(route);
    const missing = candidates.filter((instance) => routing.endpointOf(instance, route.resource) === undefined);
    for (const instance of missing) {
      const key = `${instance}\u0000${route.resource}`;
      unreachable.set(key, [...(unreachable.get(key) ?? []), route]);
    }
  }
  for (const [key, routes] of unreachable) {
    const [instance, resource] = key.split('\u0000') as [string, string];
    const examples = [...new Set(routes.map((r) => `${r.method} ${r.paths[0]}`))].slice(0, 3).join(', ');
    const file =
      instance === MAIN_INSTANCE
        ? main.origin.describe(['listeners'])
        : `${cluster.workers.find((w) => w.name === instance)!.file}: worker_listeners`;
    const why =
      instance === MAIN_INSTANCE
        ? 'only main serves some requests'
        : `${instance} writes ${streamsWrittenBy(topology, instance).join(', ')}, so the requests that ` +
          `write ${streamsWrittenBy(topology, instance).length > 1 ? 'them' : 'it'} go there`;
    problems.push(
      `${file}: ${why} (${examples}${routes.length > 3 ? ', …' : ''}), but ${instance} has no http listener with ` +
        `the \`${resource}\` resource`,
    );
  }
  return problems;
}

function serves(listener: ListenerConfig, resource: string): boolean {
  return listenerServes(listener, resource) && !listenerServes(listener, 'router');
}

/** How to reach one listener of an instance. */
export type Endpoint =
  | { readonly instance: string; readonly socketPath: string; readonly label: string }
  | { readonly instance: string; readonly host: string; readonly port: number; readonly label: string };

/** Where to connect for a listener: its socket, or its TCP port on a concrete local address. */
export function endpointOfListener(instance: string, listener: ListenerConfig): Endpoint | undefined {
  if (listener.path !== undefined) return { instance, socketPath: listener.path, label: `unix:${listener.path}` };
  if (listener.port === undefined || listener.port === 0) return undefined;
  const bound = listener.bind_addresses?.[0] ?? listener.bind_address ?? '::';
  // A wildcard bind is reachable on loopback; IPv4 loopback works for '::' on dual-stack hosts too.
  const host = bound === '0.0.0.0' || bound === '::' || bound === '' ? '127.0.0.1' : bound;
  return { instance, host, port: listener.port, label: `${host.includes(':') ? `[${host}]` : host}:${listener.port}` };
}

/**
 * Which instances may serve each route. A route's `servedBy` (from the registry) and the roles
 * decide it:
 * - `any`: the generic workers with a listener for the route's resource, leaving out those that
 *   write a stream when others remain (a dedicated writer serves its stream's endpoints, as an
 *   admin who gives it a client listener for them means); main when there is none;
 * - `main`: main;
 * - `media`: media_repository workers with a `media` listener; main when there is none;
 * - `writer:<stream>`: the stream's writers.
 */
export class RoutingTable {
  private readonly cache = new Map<RouteDefinition<never>, readonly string[]>();

  constructor(readonly cluster: Cluster) {}

  candidates(route: RouteDefinition<never>): readonly string[] {
    let found = this.cache.get(route);
    if (found === undefined) {
      found = this.compute(route);
      this.cache.set(route, found);
    }
    return found;
  }

  /** The instances that take initial syncs of a user-sticky route; the route's own when unset. */
  initialSyncCandidates(route: RouteDefinition<never>): readonly string[] {
    const configured = this.cluster.topology.initialSyncInstances;
    return configured.length > 0 ? configured : this.candidates(route);
  }

  /**
   * Whether any instance serves the resource. One that none serves (no `media` listener anywhere,
   * say) is not part of the deployment: its routes are not routed, as a listener without it
   * answers them with 404.
   */
  isServed(resource: string): boolean {
    const instances = [MAIN_INSTANCE, ...this.cluster.workers.map((w) => w.name)];
    return instances.some((instance) => listenersOf(this.cluster, instance).some((l) => serves(l, resource)));
  }

  /** The first listener of `instance` that serves `resource` (UNIX sockets preferred). */
  endpointOf(instance: string, resource: string): Endpoint | undefined {
    const listeners = listenersOf(this.cluster, instance).filter((l) => serves(l, resource));
    const ordered = [...listeners.filter((l) => l.path !== undefined), ...listeners.filter((l) => l.path === undefined)];
    for (const listener of ordered) {
      const endpoint = endpointOfListener(instance, listener);
      if (endpoint) return endpoint;
    }
    return undefined;
  }

  private compute(route: RouteDefinition<never>): readonly string[] {
    const { workers, topology } = this.cluster;
    const withResource = (app: WorkerApp) =>
      workers.filter((w) => w.app === app && w.config.worker_listeners.some((l) => serves(l, route.resource))).map((w) => w.name);
    switch (route.servedBy) {
      case 'main':
        return [MAIN_INSTANCE];
      case 'any': {
        const generic = withResource('generic_worker');
        const nonWriters = generic.filter((name) => streamsWrittenBy(topology, name).length === 0);
        if (nonWriters.length > 0) return nonWriters;
        return generic.length > 0 ? generic : [MAIN_INSTANCE];
      }
      case 'media': {
        const media = withResource('media_repository');
        return media.length > 0 ? media : [MAIN_INSTANCE];
      }
      default: {
        const stream = route.servedBy.slice('writer:'.length) as StreamName;
        return topology.writers[stream];
      }
    }
  }
}

/**
 * Whether a route is for clients and servers outside the deployment, and so routed by the router
 * and the reverse proxy. `/health` is answered by every listener itself, and the replication
 * resource must never be reachable from outside.
 */
export function isPublicRoute(route: RouteDefinition<never>): boolean {
  return route.resource !== 'health' && route.resource !== 'replication';
}

/** A route that syncs a user: it can be an initial sync, which has its own pool. */
export function isSyncRoute(route: RouteDefinition<never>): boolean {
  return route.sticky === 'user' && route.paths.some((p) => /\/(sync|initialSync)$/.test(p));
}

/** The initial-sync rule of Synapse's docs: `/sync` (or `/initialSync`) without `since`. */
export function isInitialSync(route: RouteDefinition<never>, query: URLSearchParams): boolean {
  return isSyncRoute(route) && !query.has('since');
}
