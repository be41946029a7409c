// `myelin proxy-config nginx|haproxy`: prints a reverse-proxy config for the configured workers.

import { loadConfig } from '../config/load.js';
import { haproxyConfig, nginxConfig } from '../workers/proxy-config.js';
import { loadCluster } from '../workers/topology.js';
import { EXIT_OK, UsageError, parse } from './args.js';

export function proxyConfigCommand(args: string[], defaultPaths: () => string[]): number {
  const [tool, ...rest] = args;
  if (tool !== 'nginx' && tool !== 'haproxy') throw new UsageError('proxy-config needs the proxy: nginx or haproxy');
  const values = parse(rest, {
    'config-path': { type: 'string', short: 'c', multiple: true },
    workers: { type: 'string' },
    listen: { type: 'string' },
    'server-name': { type: 'string' },
  });
  const main = loadConfig(values['config-path'] ?? defaultPaths());
  const cluster = loadCluster(main, { workersDir: values.workers });
  const publicHost = main.public_baseurl === undefined ? undefined : new URL(main.public_baseurl).hostname;
  const options = {
    listen: values.listen ?? (tool === 'nginx' ? '8008' : ':8008'),
    serverName: values['server-name'] ?? publicHost ?? main.server_name,
    maxBodyBytes: main.max_upload_size,
  };
  process.stdout.write(tool === 'nginx' ? nginxConfig(cluster, options) : haproxyConfig(cluster, options));
  return EXIT_OK;
}
