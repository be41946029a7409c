// `myelin worker -c homeserver.yaml -c workers/NAME.yaml`: runs one worker process, as Synapse's
// `synapse.app.generic_worker` does with the same files. The supervisor in `myelin start` runs this
// command for each worker file; systemd users run it from `myelin-worker@.service`.

import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkWorkerRequirements, topologyOf } from '../config/roles.js';
import type { RunningListener } from '../http/listener.js';
import { applyFileLimit } from '../util/fd-limit.js';
import { StartupAbortedError, startWorker, type RunningHomeserver } from '../process/homeserver.js';
import { createRouter, isRouterListener, startRouterListeners, type Router } from '../workers/router.js';
import { SUPERVISED_ENV } from '../process/supervised.js';
import { loadCluster } from '../workers/topology.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, parse } from './args.js';
import { loggerFor } from './logger.js';

/**
 * The files a worker reads: the `-c` arguments in order, with the `conf.d/` beside the first one
 * read right after it (as `myelin start` reads it), unless it is named already.
 */
export function workerConfigPaths(paths: readonly string[]): string[] {
  const first = paths[0];
  if (first === undefined || !existsSync(first) || statSync(first).isDirectory()) return [...paths];
  const confD = join(dirname(resolve(first)), 'conf.d');
  if (!existsSync(confD) || !statSync(confD).isDirectory()) return [...paths];
  const named = paths.some((p) => resolve(p) === confD || dirname(resolve(p)) === confD);
  return named ? [...paths] : [first, confD, ...paths.slice(1)];
}

export async function workerCommand(args: string[]): Promise<number> {
  const values = parse(args, { 'config-path': { type: 'string', short: 'c', multiple: true } });
  const given = values['config-path'] ?? [];
  if (given.length < 2) throw new UsageError('worker needs the shared config and the worker file: -c homeserver.yaml -c workers/NAME.yaml');
  const paths = workerConfigPaths(given);
  const config = loadConfig(paths);
  const problems = checkWorkerRequirements(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const name = topologyOf(config).instanceName;
  const log = loggerFor({ ...config, log_config: config.worker_log_config ?? config.log_config }, name);
  applyFileLimit(config.soft_file_limit, log);

  // A router listener on a worker is served by the router, which needs the whole deployment:
  // the shared files (every path but the worker's own file) and the workers directory.
  const routerListeners = config.worker_listeners.filter(isRouterListener);
  let router: Router | undefined;
  if (routerListeners.length > 0) {
    const shared = loadConfig(workerConfigPaths(given.slice(0, -1)), { warn: () => undefined });
    router = createRouter({ cluster: loadCluster(shared, { warn: () => undefined }), log });
  }

  const stopRequested = new Promise<string>((resolveStop) => {
    process.once('SIGTERM', () => resolveStop('SIGTERM'));
    process.once('SIGINT', () => resolveStop('SIGINT'));
    // Supervised: the supervisor holds our stdin open; it closing means the supervisor is gone.
    if (process.env[SUPERVISED_ENV] === '1') {
      process.stdin.on('data', () => undefined);
      process.stdin.once('end', () => resolveStop('the end of the supervisor'));
      process.stdin.once('error', () => resolveStop('the end of the supervisor'));
    }
  });

  // A stop asked for while starting (e.g. while waiting for the database) ends the start cleanly.
  const starting = new AbortController();
  void stopRequested.then(() => starting.abort());
  let worker: RunningHomeserver;
  try {
    worker = await startWorker({ ...config, worker_listeners: config.worker_listeners.filter((l) => !isRouterListener(l)) }, log, {
      signal: starting.signal,
    });
  } catch (err) {
    if (!(err instanceof StartupAbortedError)) throw err;
    log.info('stopped before it finished starting');
    process.stdin.destroy();
    return EXIT_OK;
  }
  let routing: RunningListener[] = [];
  try {
    if (router) routing = await startRouterListeners(routerListeners, router, log);
  } catch (err) {
    router?.close();
    await worker.stop(0);
    throw err;
  }

  const reason = await stopRequested;
  log.info(`received ${reason}; stopping`);
  try {
    await Promise.all(routing.map((l) => l.close(10_000)));
    router?.close();
    await worker.stop();
    log.info('stopped');
    return EXIT_OK;
  } catch (err) {
    log.error({ err }, 'error while stopping');
    return EXIT_FAILURE;
  } finally {
    // The supervisor's pipe would keep this process alive after the worker stopped.
    process.stdin.destroy();
  }
}
