// The process's open-file limit (RLIMIT_NOFILE). Every connection, database file and socket is a
// file descriptor; most systems start processes with a soft limit of 1024 under a higher hard
// limit, and a server left at 1024 runs out of descriptors after about a thousand connections.
// Node itself raises the soft limit to the hard limit when it starts; Myelin checks that, sets it
// to `soft_file_limit` when configured (Synapse's key: 0 means the hard limit), and warns when
// the limit is low, which only the admin can change (the hard limit).
//
// Node has no setrlimit API. On Linux, prlimit(2) changes the limits of a running process, and an
// unprivileged process may do it to a process of its own user, within the hard limit; util-linux's
// `prlimit` command (or Python's `resource.prlimit`, where util-linux is missing) makes that call
// for our own pid.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Logger } from './log.js';

export interface FileLimit {
  soft: number;
  /** `Infinity` when unlimited. */
  hard: number;
}

function parseLimit(text: string): number {
  return text === 'unlimited' ? Infinity : Number(text);
}

/** The open-file limit of a process, from `/proc/<pid>/limits`; undefined where there is no /proc. */
export function readFileLimit(pid: number | 'self' = 'self'): FileLimit | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!match) return undefined;
  return { soft: parseLimit(match[1]!), hard: parseLimit(match[2]!) };
}

/** The kernel's ceiling for RLIMIT_NOFILE, which bounds an "unlimited" hard limit. */
function kernelFileCeiling(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || 1_048_576;
  } catch {
    return 1_048_576;
  }
}

/** Sets this process's soft limit with an outside helper; returns why it failed, or undefined. */
function setSoftLimit(soft: number, hard: number): string | undefined {
  const pid = String(process.pid);
  const hardText = Number.isFinite(hard) ? String(hard) : 'unlimited';
  const attempts: [string, string[]][] = [
    ['prlimit', ['--pid', pid, `--nofile=${soft}:${hardText}`]],
    [
      'python3',
      [
        '-c',
        'import resource, sys; h = resource.RLIM_INFINITY if sys.argv[3] == "unlimited" else int(sys.argv[3]); ' +
          'resource.prlimit(int(sys.argv[1]), resource.RLIMIT_NOFILE, (int(sys.argv[2]), h))',
        pid,
        String(soft),
        hardText,
      ],
    ],
  ];
  const failures: string[] = [];
  for (const [command, args] of attempts) {
    const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.error) {
      failures.push(`${command}: ${(result.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : result.error.message}`);
      continue;
    }
    if (result.status === 0) return undefined;
    failures.push(`${command}: ${result.stderr.trim().split('\n').pop() || `exit status ${result.status}`}`);
  }
  return failures.join('; ');
}

/** Below this many open files, a busy server runs out of descriptors: worth a warning. */
export const LOW_FILE_LIMIT = 4096;

export interface FileLimitResult {
  before: FileLimit;
  after: FileLimit;
  /** Why the limit could not be set, when it could not. */
  failure?: string;
}

/**
 * Sets this process's soft open-file limit to `wanted` (0: the hard limit, as Synapse's
 * `soft_file_limit: 0`), never above the hard limit. Logs what was done and the resulting
 * limit. Undefined where the limit cannot be read (no /proc).
 */
export function applyFileLimit(wanted: number, log: Logger): FileLimitResult | undefined {
  const before = readFileLimit();
  if (!before) {
    log.info('cannot read the open-file limit (no /proc/self/limits); left as it is');
    return undefined;
  }
  const ceiling = Number.isFinite(before.hard) ? before.hard : kernelFileCeiling();
  const target = Math.min(wanted === 0 ? ceiling : wanted, ceiling);
  let result: FileLimitResult = { before, after: before };
  if (target === before.soft) {
    log.info({ soft: before.soft, hard: before.hard }, `open-file limit: ${before.soft} (hard limit ${before.hard})`);
  } else {
    const failure = setSoftLimit(target, before.hard);
    const after = readFileLimit() ?? before;
    if (failure !== undefined || after.soft !== target) {
      log.warn(
        { soft: after.soft, hard: after.hard, wanted: target },
        `could not set the open-file limit from ${before.soft} to ${target} (${failure ?? 'no change'}); ` +
          'set it before starting (systemd: LimitNOFILE=, a shell: ulimit -n), or install util-linux for prlimit',
      );
      return { before, after, failure: failure ?? 'no change' };
    }
    log.info(
      { soft: after.soft, hard: after.hard },
      `set the open-file limit from ${before.soft} to ${after.soft} (hard limit ${after.hard})`,
    );
    result = { before, after };
  }
  if (wanted === 0 && result.after.soft < LOW_FILE_LIMIT) {
    log.warn(
      { soft: result.after.soft, hard: result.after.hard },
      `the open-file limit is only ${result.after.soft}, and every connection takes one: raise the hard limit ` +
        `(systemd: LimitNOFILE=65536; a shell: ulimit -Hn) before starting Myelin`,
    );
  }
  return result;
}
