// The `myelin` command. Exit status: 0 success, 1 runtime failure, 2 usage or configuration error.

import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROUTES } from '../api/registry.js';
import { generateConfig } from '../config/generate.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../config/load.js';
import { configReference } from '../config/reference.js';
import { ListenerError } from '../http/listener.js';
import { SchemaVersionError } from '../storage/migrations.js';
import { ServerNameMismatchError } from '../storage/server-meta-store.js';
import { applyFileLimit } from '../util/fd-limit.js';
import { StartupAbortedError, StartupConfigError, startHomeserver, type RunningHomeserver } from '../process/homeserver.js';
import { createRouter, isRouterListener, startRouterListeners, type Router } from '../workers/router.js';
import { Supervisor, workerProcessSpecs } from '../workers/supervisor.js';
import { loadCluster } from '../workers/topology.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parse, UsageError } from './args.js';
import { loggerFor } from './logger.js';
import { formatRoutesTable } from './routes-table.js';

const HELP = `myelin — a Matrix homeserver

Usage:
  myelin start [-c PATH]... [--workers DIR | --no-workers]
                                    run the homeserver (default config: ./data/homeserver.yaml,
                                    generated for server name "localhost" if missing), and
                                    supervise the workers in workers/ beside the config (or DIR)
  myelin worker -c homeserver.yaml -c workers/NAME.yaml
                                    run one worker (the files are merged in order; the
                                    conf.d/ beside the first file is read after it)
  myelin generate-config --server-name NAME --config-dir DIR [--data-dir DIR] [--port N]
                                    write DIR/homeserver.yaml and a new signing key
  myelin register-user -c PATH --user NAME --password PW [--admin]
                                    register a user on the running server (shared secret)
  myelin routes                     list every HTTP route: resource, workers, stickiness
  myelin proxy-config nginx|haproxy [-c PATH]... [--workers DIR] [--listen ADDR]
                  [--server-name NAME]
                                    print a reverse-proxy config that routes each request to
                                    the workers that serve it (from the route registry)
  myelin check [-c PATH]... [--workers DIR]
                                    check sockets, Redis, replication, worker health and the
                                    database of a running deployment; exit 1 on any failure
  myelin systemd [-c CONFIG] [--user USER] [--group GROUP]
                                    print systemd units: myelin.service (main) and the
                                    template myelin-worker@.service (one per worker file)
  myelin config-reference           print the configuration reference (Markdown)
  myelin --help | --version

Options:
  -c, --config-path PATH            a config file or a directory of *.yaml files; repeatable.
                                    With one file, a sibling conf.d/ directory is read after it.
`;

function version(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await run(argv);
}

export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      case '--version':
      case '-V':
        process.stdout.write(`myelin ${version()}\n`);
        return EXIT_OK;
      case 'generate-config':
        return generateConfigCommand(rest);
      case 'routes':
        parse(rest, {});
        process.stdout.write(formatRoutesTable(ROUTES));
        return EXIT_OK;
      case 'config-reference':
        parse(rest, {});
        process.stdout.write(`${configReference()}\n`);
        return EXIT_OK;
      // The other commands' modules (and their clients: Redis, PostgreSQL checks, HTTP) load only
      // when asked for, so a running server does not carry them.
      case 'start':
        return await startCommand(rest);
      case 'register-user':
        return await (await import('./register-user.js')).registerUserCommand(rest);
      case 'worker':
        return await (await import('./worker.js')).workerCommand(rest);
      case 'check':
        return await (await import('./check.js')).checkCommand(rest, defaultConfigPaths);
      case 'proxy-config':
        return (await import('./proxy-config.js')).proxyConfigCommand(rest, defaultConfigPaths);
      case 'systemd':
        return (await import('./systemd.js')).systemdCommand(rest);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`myelin: ${err.message}\n\n${HELP}`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`myelin: configuration error:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof StartupConfigError || err instanceof ServerNameMismatchError) {
      process.stderr.write(`myelin: configuration error:\n  ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ListenerError || err instanceof SchemaVersionError) {
      process.stderr.write(`myelin: cannot start: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`myelin: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT_FAILURE;
  }
}

function generateConfigCommand(args: string[]): number {
  const values = parse(args, {
    'server-name': { type: 'string' },
    'config-dir': { type: 'string' },
    'data-dir': { type: 'string' },
    port: { type: 'string' },
  });
  if (!values['server-name'] || !values['config-dir']) {
    throw new UsageError('generate-config needs --server-name and --config-dir');
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new UsageError(`--port: expected a port number, got "${values.port}"`);
  }
  const { configPath, signingKeyPath } = generateConfig({
    serverName: values['server-name'],
    configDir: values['config-dir'],
    dataDir: values['data-dir'],
    port,
  });
  process.stdout.write(`wrote ${configPath}\nsigning key: ${signingKeyPath}\n`);
  return EXIT_OK;
}

/** The config a command reads when no `-c` is given (it is not generated). */
function defaultConfigPaths(): string[] {
  return [defaultConfigPath()];
}

async function startCommand(args: string[]): Promise<number> {
  const values = parse(args, {
    'config-path': { type: 'string', short: 'c', multiple: true },
    workers: { type: 'string' },
    'no-workers': { type: 'boolean' },
  });
  if (values.workers !== undefined && values['no-workers']) throw new UsageError('--workers and --no-workers exclude each other');
  let paths = values['config-path'] ?? [];
  if (paths.length === 0) {
    const path = defaultConfigPath();
    if (!existsSync(path)) {
      generateConfig({ serverName: 'localhost', configDir: dirname(path) });
      process.stderr.write(`myelin: generated ${path} for server name "localhost"\n`);
    }
    paths = [path];
  }
  const config = loadConfig(paths);
  // Router listeners are served by the router, which needs the whole deployment; the workers are
  // supervised here unless systemd runs them (--no-workers).
  const routerListeners = config.listeners.filter(isRouterListener);
  const supervise = !values['no-workers'];
  const cluster = supervise || routerListeners.length > 0 ? loadCluster(config, { workersDir: values.workers }) : undefined;
  const log = loggerFor(config, 'main');
  // Before any listener or worker: the workers inherit the limit (and set their own).
  applyFileLimit(config.soft_file_limit, log);
  // Signal handlers go in before start-up, so a SIGTERM that arrives while starting (or right
  // after the "serving" line) still means a clean stop, never the default abrupt exit.
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  // A stop asked for while starting (e.g. while waiting for the database) ends the start cleanly.
  const starting = new AbortController();
  void stopRequested.then(() => starting.abort());
  let homeserver: RunningHomeserver;
  try {
    homeserver = await startHomeserver({ ...config, listeners: config.listeners.filter((l) => !isRouterListener(l)) }, log, {
      signal: starting.signal,
    });
  } catch (err) {
    if (!(err instanceof StartupAbortedError)) throw err;
    log.info('stopped before it finished starting');
    return EXIT_OK;
  }
  let router: Router | undefined;
  let routing: Awaited<ReturnType<typeof startRouterListeners>> = [];
  let supervisor: Supervisor | undefined;
  try {
    if (routerListeners.length > 0) {
      router = createRouter({ cluster: cluster!, log });
      routing = await startRouterListeners(routerListeners, router, log);
    }
    if (supervise && cluster && cluster.workers.length > 0) {
      supervisor = new Supervisor({ log });
      const count = cluster.workers.length;
      supervisor.start(workerProcessSpecs(cluster)).then(
        () => log.info(`all ${count} worker${count === 1 ? ' is' : 's are'} up`),
        (err: unknown) => log.error({ err }, 'supervisor failed'),
      );
    }
  } catch (err) {
    await supervisor?.stop();
    router?.close();
    await homeserver.stop(0);
    throw err;
  }
  const signal = await stopRequested;
  log.info(`received ${signal}; stopping`);
  try {
    // Workers first: they may still be calling main while they finish their requests.
    await supervisor?.stop();
    await Promise.all(routing.map((l) => l.close(10_000)));
    router?.close();
    await homeserver.stop();
    log.info('stopped');
    return EXIT_OK;
  } catch (err) {
    log.error({ err }, 'error while stopping');
    return EXIT_FAILURE;
  }
}
