// Roles in a worker deployment: which process is which (`worker_app`, `worker_name`), which
// instance writes which stream (`stream_writers`), where each instance's replication listener is
// (`instance_map`), and who runs the other duties (`federation_sender_instances`,
// `pusher_instances`, `run_background_tasks_on`). The keys and their rules are Synapse's, so a
// Synapse worker setup reads the same; where Synapse's error text is what admins search for, the
// problem says it the same way.
//
// `checkRoles` runs inside `loadConfig`, so every process refuses a config whose roles contradict
// each other; `topologyOf` hands the result to the rest of the code.

import type { StreamName } from '../streams/streams.js';
import type { Config } from './types.js';
import type { InstanceLocation, ListenerConfig } from './schema.js';

/** The main process's instance name, in `instance_map`, `stream_writers` and log lines. */
export const MAIN_INSTANCE = 'main';
/** Synapse's internal name for the main process, accepted wherever an instance is named. */
const SYNAPSE_MAIN_INSTANCE = 'master';

export type WorkerApp = 'generic_worker' | 'media_repository';

/**
 * Synapse's historical worker apps. Each is now a generic worker (Synapse runs them all through
 * `synapse.app.generic_worker`); the name is kept only to explain problems.
 */
const LEGACY_GENERIC_APPS = [
  'appservice',
  'client_reader',
  'event_creator',
  'event_persister',
  'federation_reader',
  'federation_sender',
  'frontend_proxy',
  'pusher',
  'synchrotron',
  'user_dir',
] as const;

export interface WorkerAppName {
  /** `main` for `synapse.app.homeserver`: a file that describes the main process. */
  app: WorkerApp | 'main';
  /** The legacy app it was written as (`federation_sender`), if any. */
  legacy?: string;
}

/**
 * Reads `worker_app` as Synapse does: with or without the `synapse.app.` prefix, legacy names
 * mapped to `generic_worker`. Undefined for a name Synapse never had.
 */
export function normaliseWorkerApp(value: string): WorkerAppName | undefined {
  const name = value.trim().replace(/^synapse\.app\./, '');
  if (name === 'generic_worker' || name === 'media_repository') return { app: name };
  if (name === 'homeserver') return { app: 'main' };
  if ((LEGACY_GENERIC_APPS as readonly string[]).includes(name)) return { app: 'generic_worker', legacy: name };
  return undefined;
}

/** Which streams allow several writers; the others need exactly one. */
export const MULTI_WRITER_STREAMS: ReadonlySet<StreamName> = new Set(['events', 'receipts', 'device_lists']);
const WRITER_STREAMS: readonly StreamName[] = [
  'events',
  'typing',
  'to_device',
  'account_data',
  'presence',
  'push_rules',
  'receipts',
  'device_lists',
];

export interface Topology {
  /** The instance this config describes: `main`, or the worker's name. */
  readonly instanceName: string;
  /** The worker's app; undefined for the main process. */
  readonly workerApp: WorkerApp | undefined;
  /** The writers of each stream, in config order (the order sharding depends on). */
  readonly writers: Readonly<Record<StreamName, readonly string[]>>;
  /** Where each instance's replication listener is; `main` is always the main process. */
  readonly instanceMap: Readonly<Record<string, InstanceLocation>>;
  readonly federationSenderInstances: readonly string[];
  readonly pusherInstances: readonly string[];
  readonly runBackgroundTasksOn: string;
  /** The workers that take initial syncs (`/sync` without `since`); empty: the sync pool does. */
  readonly initialSyncInstances: readonly string[];
}

/** `master` (Synapse's internal name) and `main` are the same instance. */
export function canonicalInstanceName(name: string): string {
  return name === SYNAPSE_MAIN_INSTANCE ? MAIN_INSTANCE : name;
}

function instanceList(names: readonly string[] | undefined, fallback: readonly string[]): string[] {
  return (names ?? fallback).map(canonicalInstanceName);
}

/** Normalised `instance_map`: Synapse configs may call the main process `master`. */
function instanceMapOf(config: Config): Record<string, InstanceLocation> {
  const map: Record<string, InstanceLocation> = {};
  for (const [name, location] of Object.entries(config.instance_map)) map[canonicalInstanceName(name)] = location;
  return map;
}

/** The roles a (validated) config describes. */
export function topologyOf(config: Config): Topology {
  const app = config.worker_app === undefined ? undefined : normaliseWorkerApp(config.worker_app);
  const workerApp = app === undefined || app.app === 'main' ? undefined : app.app;
  const writers = Object.fromEntries(
    WRITER_STREAMS.map((stream) => [stream, instanceList(config.stream_writers[stream], [MAIN_INSTANCE])]),
  ) as Record<StreamName, string[]>;
  return {
    instanceName: workerApp === undefined ? MAIN_INSTANCE : (config.worker_name ?? MAIN_INSTANCE),
    workerApp,
    writers,
    instanceMap: instanceMapOf(config),
    federationSenderInstances: instanceList(config.federation_sender_instances, [MAIN_INSTANCE]),
    pusherInstances: instanceList(config.pusher_instances, [MAIN_INSTANCE]),
    runBackgroundTasksOn: canonicalInstanceName(config.run_background_tasks_on),
    initialSyncInstances: instanceList(config.initial_sync_instances, []),
  };
}

/** The streams `instance` writes. */
export function streamsWrittenBy(topology: Topology, instance: string): StreamName[] {
  return WRITER_STREAMS.filter((stream) => topology.writers[stream].includes(instance));
}

/** Whether a listener serves the resource (`/health` is on every HTTP listener). */
export function listenerServes(listener: ListenerConfig, resource: string): boolean {
  return listener.type === 'http' && listener.resources.some((r) => (r.names as readonly string[]).includes(resource));
}

/** The listeners of the process a config describes: a worker's own, or main's. */
export function ownListeners(config: Config): { key: 'listeners' | 'worker_listeners'; listeners: ListenerConfig[] } {
  return topologyOf(config).workerApp === undefined
    ? { key: 'listeners', listeners: config.listeners }
    : { key: 'worker_listeners', listeners: config.worker_listeners };
}

/** Whether an `instance_map` entry designates this listener. */
export function locationMatches(location: InstanceLocation, listener: ListenerConfig): boolean {
  if (location.path !== undefined) return listener.path === location.path;
  return listener.port !== undefined && listener.port === location.port;
}

function describeLocation(location: InstanceLocation): string {
  return location.path ?? `${location.host}:${location.port}`;
}

function describeListener(listener: ListenerConfig): string {
  return listener.path ?? `port ${listener.port}`;
}

/**
 * Checks the worker keys of one loaded config (main's, or a worker file merged over the shared
 * files). Problems are appended, each prefixed with the file and key path.
 */
export function checkRoles(config: Config, problems: string[]): void {
  const where = (...path: (string | number)[]) => config.origin.describe(path);
  const app = config.worker_app === undefined ? undefined : normaliseWorkerApp(config.worker_app);
  if (config.worker_app !== undefined && app === undefined) {
    problems.push(
      `${where('worker_app')}: unknown worker app ${JSON.stringify(config.worker_app)}; expected generic_worker or media_repository ` +
        `(the synapse.app. prefix and Synapse's legacy names such as synapse.app.client_reader are accepted)`,
    );
  }
  const isWorker = app !== undefined && app.app !== 'main';
  const topology = topologyOf(config);

  if (isWorker) checkWorkerKeys(config, app, problems);
  else {
    if (config.worker_name !== undefined) {
      problems.push(
        `${where('worker_name')}: this config has no \`worker_app\`; a worker file needs both \`worker_app\` and \`worker_name\``,
      );
    }
    if (config.worker_listeners.length > 0) {
      problems.push(
        `${where('worker_listeners')}: only workers have \`worker_listeners\` (this config has no \`worker_app\`); the main process ` +
          `uses \`listeners\``,
      );
    }
  }

  // Synapse's rules on stream writers, in its words where admins will search for them.
  for (const stream of WRITER_STREAMS) {
    const writers = topology.writers[stream];
    const configured = config.stream_writers[stream];
    if (configured !== undefined) {
      if (writers.length === 0) {
        problems.push(
          `${where('stream_writers', stream)}: ` +
            (stream === 'events'
              ? 'Must specify at least one instance to handle `events`.'
              : `Must specify at least one instance to handle \`${stream}\` messages.`),
        );
      } else if (!MULTI_WRITER_STREAMS.has(stream) && writers.length !== 1) {
        problems.push(`${where('stream_writers', stream)}: Must only specify one instance to handle \`${stream}\` messages.`);
      }
      const seen = new Set<string>();
      for (const writer of writers) {
        if (seen.has(writer)) problems.push(`${where('stream_writers', stream)}: ${JSON.stringify(writer)} is listed twice`);
        seen.add(writer);
      }
    }
    for (const writer of new Set(writers)) {
      if (writer !== MAIN_INSTANCE && topology.instanceMap[writer] === undefined) {
        problems.push(
          `${where('stream_writers', stream)}: Instance '${writer}' is configured to write ${stream} but does not appear in ` +
            `\`instance_map\` config.`,
        );
      }
    }
  }

  checkOwnReplicationListener(config, topology, problems);
  checkRouterListeners(config, problems);
}

function checkWorkerKeys(config: Config, app: WorkerAppName, problems: string[]): void {
  const where = (...path: (string | number)[]) => config.origin.describe(path);
  const name = config.worker_name;
  if (name === undefined) {
    problems.push(`${where('worker_name')}: required key is missing: every worker needs a unique \`worker_name\``);
  } else if (name === MAIN_INSTANCE || name === SYNAPSE_MAIN_INSTANCE) {
    problems.push(`${where('worker_name')}: ${JSON.stringify(name)} is the main process's name; choose another name for this worker`);
  }
  const topology = topologyOf(config);
  if (app.legacy === 'federation_sender' && name !== undefined && !topology.federationSenderInstances.includes(name)) {
    problems.push(
      `${where('worker_app')}: ${config.worker_app} sends federation only when listed: ` +
        `add ${JSON.stringify(name)} to \`federation_sender_instances\` in the shared config ` +
        '(or write `worker_app: generic_worker`)',
    );
  }
  if (app.legacy === 'pusher' && name !== undefined && !topology.pusherInstances.includes(name)) {
    problems.push(
      `${where('worker_app')}: ${config.worker_app} sends push notifications only when listed: ` +
        `add ${JSON.stringify(name)} to \`pusher_instances\` in the shared config ` +
        '(or write `worker_app: generic_worker`)',
    );
  }
}

/**
 * What a worker process needs besides consistent keys: the shared PostgreSQL database, the Redis
 * bus and the way to reach main. Checked when a worker is about to run (`myelin worker`, the
 * supervisor, `myelin check`), not by every load, so a worker file can be read on its own.
 */
export function checkWorkerRequirements(config: Config): string[] {
  const problems: string[] = [];
  const where = (...path: (string | number)[]) => config.origin.describe(path);
  const topology = topologyOf(config);
  if (topology.workerApp === undefined) {
    problems.push(
      `${where('worker_app')}: required key is missing: ${config.origin.files.join(' + ')} describe the main process, not a worker ` +
        '(a worker file sets `worker_app: generic_worker` and `worker_name`)',
    );
    return problems;
  }
  if (config.database.name === 'sqlite3') {
    problems.push(
      `${where('database')}: workers need PostgreSQL: every process of a worker deployment shares one database, ` +
        'and SQLite cannot be shared. ' +
        'Set `database.name: psycopg2` in the shared config (run SQLite deployments as a single process: `myelin start` without workers).',
    );
  }
  if (!config.redis.enabled) {
    problems.push(
      `${where('redis')}: workers replicate through Redis: set \`redis.enabled: true\` and \`redis.path\` ` +
        '(or `host`/`port`) in the shared config',
    );
  }
  if (topology.instanceMap[MAIN_INSTANCE] === undefined) {
    problems.push(
      `${where('instance_map')}: Missing data for a worker to connect to main process: ` +
        'add `main` to `instance_map` in the shared config, ' +
        `with the \`path\` (or \`host\` and \`port\`) of the main process's replication listener.`,
    );
  }
  return problems;
}

/**
 * An instance that appears in `instance_map` is reached there by the other processes, so its own
 * config must have a `replication` listener at that address — the mistake is caught at start-up
 * instead of as a refused connection in another process's log.
 */
function checkOwnReplicationListener(config: Config, topology: Topology, problems: string[]): void {
  const self = topology.instanceName;
  const location = topology.instanceMap[self];
  const { key, listeners } = ownListeners(config);
  const replicationListeners = listeners.filter((l) => listenerServes(l, 'replication'));
  // Main is always in the picture; its listener is checked through `instance_map.main` below.
  const writes = self === MAIN_INSTANCE ? [] : streamsWrittenBy(topology, self);
  if (writes.length > 0 && replicationListeners.length === 0) {
    problems.push(
      `${config.origin.describe([key])}: ${self} writes ${writes.join(', ')}, so it needs an http listener ` +
        'with the `replication` resource for the other processes to reach it',
    );
    return;
  }
  if (location === undefined) return;
  if (replicationListeners.length === 0) {
    problems.push(
      `${config.origin.describe([key])}: \`instance_map.${self}\` says the other processes reach ${self} ` +
        `at ${describeLocation(location)}, ` +
        'but it has no http listener with the `replication` resource',
    );
  } else if (!replicationListeners.some((l) => locationMatches(location, l))) {
    problems.push(
      `${config.origin.describe(['instance_map', self])}: the other processes reach ${self} at ${describeLocation(location)}, ` +
        `but its replication listener is at ${replicationListeners.map(describeListener).join(', ')}`,
    );
  }
}

/** The built-in router forwards everything it receives, so it cannot share a listener. */
function checkRouterListeners(config: Config, problems: string[]): void {
  const { key, listeners } = ownListeners(config);
  listeners.forEach((listener, i) => {
    if (!listenerServes(listener, 'router')) return;
    const others = listener.resources.flatMap((r) => r.names).filter((n) => n !== 'router' && n !== 'health');
    if (others.length > 0) {
      problems.push(
        `${config.origin.describe([key, i, 'resources'])}: a \`router\` listener forwards every request to the instance that serves it, ` +
          `so it cannot also serve ${others.join(', ')}; give those their own listener`,
      );
    }
  });
}
