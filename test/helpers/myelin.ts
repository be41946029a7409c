// Runs the real `bin/myelin` command in a child process, as an admin would.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MYELIN_BIN = join(REPO_ROOT, 'bin', 'myelin');

export interface MyelinRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
export function runMyelin(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): MyelinRun {
  const result = spawnSync(process.execPath, [MYELIN_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface MyelinProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches, rejects if the process exits first or after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** An open-file limit to start a process with (as `ulimit -n` would); both only lower the test's own. */
export interface FileLimitOption {
  soft: number;
  hard?: number;
}

/**
 * Starts a long-running command (e.g. `start`). With `fileLimit`, a shell sets the limit and then
 * becomes the command (`exec`), so the child's pid is the command's.
 */
export function spawnMyelin(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; fileLimit?: FileLimitOption } = {},
): MyelinProcess {
  const { fileLimit } = options;
  const [command, commandArgs] = fileLimit
    ? [
        '/bin/sh',
        [
          '-c',
          `ulimit -S -n ${fileLimit.soft} && ${fileLimit.hard !== undefined ? `ulimit -H -n ${fileLimit.hard} && ` : ''}exec "$0" "$@"`,
          process.execPath,
          MYELIN_BIN,
          ...args,
        ],
      ]
    : [process.execPath, [MYELIN_BIN, ...args]];
  const child = spawn(command, commandArgs, {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, MYELIN_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    output += d.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  process.once('exit', () => child.kill('SIGKILL'));

  return {
    child,
    output: () => output,
    waitFor(pattern, ms = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output);
          if (match) {
            cleanup();
            resolve(match[0]);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}; output:\n${output}`));
        }, ms);
        const onExit = () => {
          cleanup();
          reject(new Error(`myelin exited (status ${child.exitCode}) before printing ${pattern}; output:\n${output}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off('exit', onExit);
        };
        listeners.add(check);
        child.once('exit', onExit);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
