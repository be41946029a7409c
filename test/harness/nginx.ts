// Starts Debian's nginx for tests: a non-daemon child with its own prefix, pid file, logs and
// temp paths in a temporary directory, serving the given http-block config (e.g. the output of
// `myelin proxy-config nginx`) on a TCP port. Stopped when this process exits.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NginxServer {
  /** The directory holding its config, logs and temp files. */
  readonly prefix: string;
  errorLog(): string;
  stop(): Promise<void>;
}

function nginxBinary(): string {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (existsSync(candidate)) return candidate;
  throw new Error('nginx not found (apt-get install nginx; .ci/run installs it)');
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx with `httpConfig` included in its http block. The config's `listen` must name
 * `port` (on 127.0.0.1), which this waits for.
 */
export async function startNginx(httpConfig: string, port: number): Promise<NginxServer> {
  const binary = nginxBinary();
  const prefix = mkdtempSync(join(tmpdir(), 'myelin-nginx-'));
  const errorLog = join(prefix, 'error.log');
  const temp = (name: string) => join(prefix, `${name}_temp`);
  writeFileSync(join(prefix, 'myelin.conf'), httpConfig);
  const isRoot = process.getuid?.() === 0;
  writeFileSync(
    join(prefix, 'nginx.conf'),
    [
      // As root, nginx would switch its workers to `nobody`, who cannot enter the test's
      // temporary directories; the socket permissions under test are the proxy user's group's.
      ...(isRoot ? ['user root;'] : []),
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${errorLog} info;`,
      'events { worker_connections 512; }',
      'http {',
      `    access_log ${join(prefix, 'access.log')};`,
      `    client_body_temp_path ${temp('client_body')};`,
      `    proxy_temp_path ${temp('proxy')};`,
      `    fastcgi_temp_path ${temp('fastcgi')};`,
      `    uwsgi_temp_path ${temp('uwsgi')};`,
      `    scgi_temp_path ${temp('scgi')};`,
      `    include ${join(prefix, 'myelin.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const args = ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', errorLog];
  // A config error is clearest from `nginx -t`, before anything runs.
  try {
    execFileSync(binary, [...args, '-t', '-q'], { stdio: 'pipe' });
  } catch (err) {
    const output = `${(err as { stderr?: Buffer }).stderr?.toString() ?? ''}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`;
    throw new Error(`nginx refused the config:\n${output}`);
  }
  const child: ChildProcess = spawn(binary, [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const log = () => `${stderr}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`;

  const deadline = Date.now() + 10_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${log()}`);
    if (Date.now() > deadline) {
      kill();
      throw new Error(`nginx did not listen on port ${port} within 10 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    prefix,
    errorLog: log,
    async stop() {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
