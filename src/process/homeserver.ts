// Starts one homeserver process — the main process, or a worker — with its database, services
// and listeners. With Redis enabled the process joins a worker deployment: the Redis replication
// bus, replication HTTP to the other instances' writers, and stream positions counted per writer
// (`cluster.ts`). This is the one place that decides which process runs what.

import { readFileSync } from 'node:fs';
import { ROUTES } from '../api/registry.js';
import type { ApiServices } from '../api/services.js';
import type { Config } from '../config/types.js';
import type { ListenerConfig, ResourceName } from '../config/schema.js';
import { parseSigningKeyFile, type SigningKey } from '../core/signing.js';
import { createDispatcher } from '../http/dispatch.js';
import { startListener, type RunningListener } from '../http/listener.js';
import { loadTlsMaterial, reloadTlsOnHangup, TlsFilesError, type TlsFiles } from '../http/tls.js';
import { DatabaseUnavailableError, type Database } from '../storage/database.js';
import { isTransientDatabaseError, messageOf } from '../storage/faults.js';
import { checkSchemaVersion, migrate, waitForDatabase } from '../storage/migrations.js';
import { openDatabase } from '../storage/open.js';
import { ServerMetaStore } from '../storage/server-meta-store.js';
import { componentLogger, type Logger } from '../util/log.js';
import { topologyOf } from '../config/roles.js';
import { InMemoryBus } from '../streams/bus.js';
import type { ClusterTransport } from './cluster.js';
import { createKernel } from './kernel.js';
import { singleProcessPlacement } from './placement.js';
import type { FederationSender } from '../federation/sender/index.js';
import { createProcessServices, type ProcessServices } from './services.js';
import { ProcessWriters } from './writers.js';
import { reportWaitingToSupervisor } from './supervised.js';

/** A start-up failure caused by the configuration or the files it names (exit status 2). */
export class StartupConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupConfigError';
  }
}

/** The process was asked to stop before it finished starting (e.g. while it waited for its database). */
export class StartupAbortedError extends Error {
  constructor() {
    super('stopped before it finished starting');
    this.name = 'StartupAbortedError';
  }
}

export interface StartOptions {
  /** Aborted when the process is asked to stop while it is still starting. */
  signal?: AbortSignal;
}

export interface RunningHomeserver {
  readonly listeners: readonly RunningListener[];
  readonly database: Database;
  readonly services: ApiServices;
  /** The federation sender, when this process is one of `federation_sender_instances`. */
  readonly federationSender: FederationSender | undefined;
  /** Stops accepting requests, lets in-flight ones finish (bounded), closes the database. */
  stop(graceMs?: number): Promise<void>;
}

export function loadSigningKey(config: Config): SigningKey {
  const where = config.origin.describe(['signing_key_path']);
  if (!config.signing_key_path) throw new StartupConfigError(`${where}: required key is missing (the server's signing key file)`);
  let text: string;
  try {
    text = readFileSync(config.signing_key_path, 'utf8');
  } catch (err) {
    throw new StartupConfigError(`${where}: cannot read ${config.signing_key_path}: ${(err as NodeJS.ErrnoException).code}`);
  }
  try {
    const [key] = parseSigningKeyFile(text);
    return key!;
  } catch (err) {
    throw new StartupConfigError(`${where}: ${config.signing_key_path}: ${(err as Error).message}`);
  }
}

/**
 * The certificate of TLS listeners (the config check made sure both paths are set when a listener
 * asks for TLS). A file that cannot be used stops start-up with the key that names it.
 */
function tlsOptionsOf(config: Config): { files: TlsFiles | undefined; options: { tls?: () => ReturnType<typeof loadTlsMaterial> } } {
  const { tls_certificate_path: certificatePath, tls_private_key_path: privateKeyPath } = config;
  if (certificatePath === undefined || privateKeyPath === undefined) return { files: undefined, options: {} };
  const files = { certificatePath, privateKeyPath };
  return {
    files,
    options: {
      tls: () => {
        try {
          return loadTlsMaterial(files);
        } catch (err) {
          if (err instanceof TlsFilesError)
            throw new StartupConfigError(`${config.origin.describe(['tls_certificate_path'])}: ${err.message}`);
          throw err;
        }
      },
    },
  };
}

/** The resource groups a listener serves. `/health` is on every HTTP listener, as in Synapse. */
export function listenerResources(listener: ListenerConfig): Set<ResourceName> {
  const names = new Set<ResourceName>(listener.resources.flatMap((r) => r.names));
  names.add('health');
  return names;
}

/** The main process (single-process, or the main of a worker deployment when Redis is enabled). */
export function startHomeserver(config: Config, log: Logger, options: StartOptions = {}): Promise<RunningHomeserver> {
  return startProcess(config, log, 'main', options);
}

/** A worker (`myelin worker`): needs PostgreSQL and Redis, which the config checks guarantee. */
export function startWorker(config: Config, log: Logger, options: StartOptions = {}): Promise<RunningHomeserver> {
  return startProcess(config, log, 'worker', options);
}

/**
 * Starts the process. A database that is down when it starts is waited for; one that fails in the
 * middle of start-up (it went down again) makes the start begin anew once it answers, rather than
 * end the process with a misleading error.
 */
async function startProcess(config: Config, log: Logger, role: 'main' | 'worker', options: StartOptions): Promise<RunningHomeserver> {
  const signingKey = loadSigningKey(config);
  const storageLog = componentLogger(log, 'storage');
  for (let delayMs = 1_000; ; delayMs = Math.min(delayMs * 2, 30_000)) {
    try {
      return await startOnce(config, log, role, signingKey, options);
    } catch (err) {
      if (options.signal?.aborted) throw new StartupAbortedError();
      if (!(err instanceof DatabaseUnavailableError)) throw err;
      storageLog.warn({ err: messageOf(err) }, `the database failed during start-up; starting again in ${delayMs / 1000} s`);
      reportWaitingToSupervisor('database');
    }
    // (a database that answers SELECT 1 but fails the start, e.g. a full disk, is not retried in a tight loop)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done() {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', done);
        resolve();
      }
      options.signal?.addEventListener('abort', done);
    });
    if (options.signal?.aborted) throw new StartupAbortedError();
  }
}

async function startOnce(
  config: Config,
  log: Logger,
  role: 'main' | 'worker',
  signingKey: SigningKey,
  options: StartOptions,
): Promise<RunningHomeserver> {
  const storageLog = componentLogger(log, 'storage');
  const database = openDatabase(config.database, storageLog);
  const listeners: RunningListener[] = [];
  const shutdown = new AbortController();
  let processServices: ProcessServices | undefined;
  let transport: ClusterTransport | undefined;
  let stopReloadingTls: () => void = () => {};
  try {
    // "Unreachable" must not read as "empty" (a worker would report schema version 0).
    await waitForDatabase(database, { log: storageLog, signal: options.signal, onWaiting: () => reportWaitingToSupervisor('database') });
    if (role === 'main') {
      const { from, to } = await migrate(database);
      if (from !== to) storageLog.info({ from, to }, `database schema upgraded from version ${from} to ${to}`);
      await new ServerMetaStore(database).claimServerName(config.server_name);
    } else {
      // Only main upgrades the schema; a worker runs on exactly the schema it knows.
      await checkSchemaVersion(database);
    }

    // One pass, each piece built once with what it needs: the kernel (database, bus, notifier,
    // caches), then in worker mode the cluster (replication to and from the other processes), then
    // the handler areas with their writers, then the routes. The bus starts following the other
    // processes once there is a process to deliver to.
    const topology = topologyOf(config);
    // Loaded only in worker mode: a single process never loads Redis or the replication client.
    const clustering = role === 'worker' || config.redis.enabled ? await import('./cluster.js') : undefined;
    transport = await clustering?.clusterTransport(config, database, topology, log);
    const kernel = createKernel({
      config,
      db: database,
      signingKey,
      log,
      placement: transport?.placement ?? singleProcessPlacement(),
      bus: transport?.bus ?? new InMemoryBus(),
      ...(transport ? { tracker: transport.tracker } : {}),
    });
    const cluster = clustering && transport ? clustering.joinCluster(config, kernel, transport, log) : undefined;
    const writers = new ProcessWriters(kernel.placement, cluster?.remote);
    processServices = await createProcessServices(kernel, { writers, ...(cluster ? { rpcServer: cluster.rpcServer } : {}) });
    const { services } = processServices;
    if (cluster && transport) {
      writers.serve(cluster.rpcServer);
      // Redis may be down at start-up: the bus keeps trying and catches up once it is there.
      void transport.bus.start(cluster.catchUp);
    }

    const listenerLog = componentLogger(log, 'http.listener');
    const tls = tlsOptionsOf(config);
    // A worker never serves main-only routes (state held in main's memory, such as nonces).
    const routes = role === 'worker' ? ROUTES.filter((route) => route.servedBy !== 'main') : ROUTES;
    for (const listener of role === 'worker' ? config.worker_listeners : config.listeners) {
      if (listener.type !== 'http') {
        listenerLog.warn({ listener: listener.port ?? listener.path }, `${listener.type} listeners are not served yet; skipped`);
        continue;
      }
      const resources = listenerResources(listener);
      const dispatcher = createDispatcher({
        routes,
        resources,
        services,
        log: componentLogger(log, 'http'),
        trustForwardedFor: listener.x_forwarded,
        shutdownSignal: shutdown.signal,
        authenticate: (token) => services.auth.authenticate(token),
        authenticateServer: (req) => services.federation.requestAuth.authenticate({ ...req, authorization: req.headers.authorization }),
        onAuthenticated: (requester, ip, userAgent) => {
          services.devices.recordSeen(requester, ip, userAgent).catch((err: unknown) => {
            // While the database is down the storage layer says so once; not once per request.
            if (isTransientDatabaseError(err)) log.debug({ err: messageOf(err) }, 'could not record device last-seen');
            else log.warn({ err }, 'could not record device last-seen');
          });
        },
      });
      const running = await startListener(listener, dispatcher, listenerLog, listener.tls ? tls.options : {});
      listeners.push(running);
      if (resources.has('replication')) componentLogger(log, 'http.resources').info('Attaching to path /_synapse/replication');
      const names = [...resources].join(', ');
      for (const address of running.addresses) listenerLog.info(`listening on ${address} (${names})`);
    }
    if (tls.files) stopReloadingTls = reloadTlsOnHangup(listeners, tls.files, listenerLog);
    log.info({ signingKey: signingKey.keyId, instance: topology.instanceName }, `Myelin is serving ${config.server_name}`);
  } catch (err) {
    // Whatever fails while undoing a partial start, the start's own error is the one to report.
    await Promise.all(listeners.map((l) => l.close(0).catch(() => undefined)));
    await processServices?.close().catch(() => undefined);
    await transport?.bus.close().catch(() => undefined);
    await database.close().catch(() => undefined);
    throw err;
  }

  return {
    listeners,
    database,
    services: processServices.services,
    federationSender: processServices.federationSender,
    async stop(graceMs = 10_000) {
      stopReloadingTls();
      // Ends long-polls at once (they watch this signal), so closing does not wait for them.
      shutdown.abort();
      await Promise.all(listeners.map((l) => l.close(graceMs)));
      await processServices?.close();
      await transport?.bus.close();
      await database.close();
    },
  };
}
