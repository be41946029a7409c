// `myelin systemd`: prints systemd units for running main and each worker as separate services
// (instead of letting `myelin start` supervise the workers): `myelin.service` for main and the
// template `myelin-worker@.service`, one instance per file in the workers directory.

import { existsSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { loadConfig } from '../config/load.js';
import { MYELIN_BIN } from '../workers/supervisor.js';
import { parse } from './args.js';

export interface SystemdOptions {
  /** The shared config file, as ExecStart names it. */
  configPath: string;
  user: string;
  /** The group the processes (and so their sockets) run as: the proxy's group, to reach them. */
  group: string;
  /** The directory under /run that holds the sockets (RuntimeDirectory=). */
  runtimeDirectory: string;
  node: string;
  bin: string;
}

/** The common directory under /run of the config's UNIX sockets (listeners and instance_map). */
export function socketRuntimeDirectory(paths: readonly string[]): string | undefined {
  const dirs = [...new Set(paths.map((p) => dirname(p)))].filter((d) => d.startsWith(`${sep}run${sep}`));
  if (dirs.length === 0) return undefined;
  const first = dirs[0]!.slice('/run/'.length).split(sep)[0]!;
  return dirs.every((d) => d.slice('/run/'.length).split(sep)[0] === first) ? first : undefined;
}

export function systemdUnits(options: SystemdOptions): string {
  const configDir = dirname(options.configPath);
  const command = `${options.node} ${options.bin}`;
  return `# ---- /etc/systemd/system/myelin.service ----
[Unit]
Description=Myelin Matrix homeserver (main process)
After=network-online.target postgresql.service redis-server.service
Wants=network-online.target

[Service]
Type=exec
User=${options.user}
Group=${options.group}
# /run/${options.runtimeDirectory} holds the UNIX sockets of main and the workers. systemd creates it
# with this mode when main starts: 2770 lets only ${options.user} and the ${options.group} group in,
# and its setgid bit gives every socket created inside the directory's group, so a reverse proxy
# in that group can connect. It is kept while main restarts, so the workers' sockets stay.
RuntimeDirectory=${options.runtimeDirectory}
RuntimeDirectoryMode=2770
RuntimeDirectoryPreserve=yes
# --no-workers: systemd runs the workers (myelin-worker@.service), not main's supervisor.
ExecStart=${command} start --no-workers -c ${options.configPath}
Restart=always
RestartSec=3
# In-flight requests get up to 10 s to finish after SIGTERM.
TimeoutStopSec=30
SyslogIdentifier=myelin

[Install]
WantedBy=multi-user.target

# ---- /etc/systemd/system/myelin-worker@.service ----
# One instance per worker file: systemctl enable --now myelin-worker@generic1
# reads ${join(configDir, 'workers', 'generic1.yaml')}.
[Unit]
Description=Myelin worker %i
AssertPathExists=${join(configDir, 'workers', '%i.yaml')}
# Stopped and restarted with main: \`systemctl restart myelin\` restarts every worker too.
PartOf=myelin.service
# Started after main, which upgrades the database schema the workers check.
After=myelin.service

[Service]
Type=exec
User=${options.user}
Group=${options.group}
ExecStart=${command} worker -c ${options.configPath} -c ${join(configDir, 'workers', '%i.yaml')}
Restart=always
RestartSec=3
TimeoutStopSec=30
SyslogIdentifier=myelin-%i

[Install]
WantedBy=myelin.service
`;
}

export function systemdCommand(args: string[]): number {
  const values = parse(args, {
    'config-path': { type: 'string', short: 'c' },
    user: { type: 'string' },
    group: { type: 'string' },
  });
  const configPath = resolve(values['config-path'] ?? '/etc/myelin/homeserver.yaml');
  let runtimeDirectory: string | undefined;
  if (existsSync(configPath)) {
    const config = loadConfig([configPath], { warn: () => undefined });
    const paths = [
      ...config.listeners.flatMap((l) => (l.path === undefined ? [] : [l.path])),
      ...Object.values(config.instance_map).flatMap((l) => (l.path === undefined ? [] : [l.path])),
    ];
    runtimeDirectory = socketRuntimeDirectory(paths);
  }
  const user = values.user ?? 'matrix-synapse';
  process.stdout.write(
    systemdUnits({
      configPath,
      user,
      group: values.group ?? user,
      runtimeDirectory: runtimeDirectory ?? 'myelin',
      node: process.execPath,
      bin: MYELIN_BIN,
    }),
  );
  return 0;
}
