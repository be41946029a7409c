// The supervisor inside `myelin start`: runs each worker of the workers directory as a child
// process, restarts one that exits unexpectedly (after 1 s, doubling up to 30 s while it keeps
// failing; back to 1 s once it stayed up a minute), and stops them all cleanly on shutdown. It
// prints one status line per event and process, e.g.
//   worker generic1: started (pid 1234) on unix:/run/myelin/generic1.sock
//   worker generic1: killed by SIGKILL; restarting in 1 s
//
// A process can also be alive and of no use: hung (stopped, an endless loop) or stuck in start-up.
// So a running worker's `/health` is probed every 5 s, and one that has not answered for 30 s
// (three probes at least) is killed and restarted; one that has not come up within 60 s of
// starting is too, unless it says (over the IPC channel) that it is waiting for something outside
// it, such as its database — a database outage is waited out, not "fixed" by restarts.
//
// Children run in their own process group, so a Ctrl-C on the terminal reaches only the
// supervisor, which forwards the stop in order. Each child's stdin is a pipe from the supervisor:
// if the supervisor dies without stopping them (kill -9), the pipe closes and `myelin worker`
// stops itself rather than live on unsupervised.

import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SUPERVISED_ENV, type SupervisorMessage } from '../process/supervised.js';
import { componentLogger, type Logger } from '../util/log.js';
import { endpointOfListener, type Cluster, type Endpoint } from './topology.js';

export const MYELIN_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'myelin');

export interface ProcessSpec {
  /** The instance name, as status lines show it. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Where the process answers `/health` once it is up; none: up as soon as it runs. */
  readonly health: readonly Endpoint[];
  readonly env?: NodeJS.ProcessEnv;
}

export interface BackoffPolicy {
  /** The first restart's delay. */
  initialMs: number;
  /** The longest delay between restarts. */
  maxMs: number;
  /** A process that stayed up this long starts again from `initialMs` when it next exits. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 };

/** The delay before the next restart, given the last delay (undefined: none yet) and the uptime. */
export function nextRestartDelay(policy: BackoffPolicy, previousDelayMs: number | undefined, uptimeMs: number): number {
  if (previousDelayMs === undefined || uptimeMs >= policy.resetAfterMs) return policy.initialMs;
  return Math.min(previousDelayMs * 2, policy.maxMs);
}

export interface SupervisorOptions {
  log: Logger;
  backoff?: BackoffPolicy;
  /** How long a child may take to stop after SIGTERM before it is killed. */
  stopGraceMs?: number;
  /** How often to probe `/health` while a child starts. */
  healthIntervalMs?: number;
  /** How often to probe `/health` of a child that is up (default 5 s). */
  watchIntervalMs?: number;
  /** How long one probe may take (default 5 s). */
  healthTimeoutMs?: number;
  /** A child up before that has not answered `/health` for this long is restarted (default 30 s). */
  unhealthyAfterMs?: number;
  /**
   * A child that has not answered `/health` this long after it started, or since it last said it
   * was waiting for something, is restarted (default 60 s).
   */
  startTimeoutMs?: number;
}

export type ProcessState = 'starting' | 'running' | 'waiting' | 'stopping' | 'stopped';

interface Supervised {
  spec: ProcessSpec;
  child?: ChildProcess;
  state: ProcessState;
  startedAt: number;
  restarts: number;
  lastDelayMs?: number;
  restartTimer?: NodeJS.Timeout;
  exited?: Promise<void>;
  /** Resolves the first time the process is up. */
  firstReady: Promise<void>;
  markReady: () => void;
  /** When the current child last said it was waiting for something (start-up progress). */
  lastWaitingAt?: number;
  /** What it said it was waiting for (reported once per start). */
  waitingFor?: string;
}

export interface ProcessStatus {
  name: string;
  state: ProcessState;
  pid: number | undefined;
  restarts: number;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

export class Supervisor {
  private readonly log: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly processes = new Map<string, Supervised>();
  private readonly exitedChildren = new WeakSet<ChildProcess>();
  private stopping = false;

  constructor(private readonly options: SupervisorOptions) {
    this.log = componentLogger(options.log, 'supervisor');
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /** Starts every process; resolves once each has been up once (restarts included). */
  async start(specs: readonly ProcessSpec[]): Promise<void> {
    for (const spec of specs) {
      if (this.processes.has(spec.name)) throw new Error(`process ${spec.name} is supervised twice`);
      let markReady!: () => void;
      const firstReady = new Promise<void>((resolve) => (markReady = resolve));
      const entry: Supervised = { spec, state: 'starting', startedAt: 0, restarts: 0, firstReady, markReady };
      this.processes.set(spec.name, entry);
      this.launch(entry);
    }
    await Promise.all([...this.processes.values()].map((p) => p.firstReady));
  }

  status(): ProcessStatus[] {
    return [...this.processes.values()].map((p) => ({
      name: p.spec.name,
      state: p.state,
      pid: p.state === 'running' || p.state === 'starting' ? p.child?.pid : undefined,
      restarts: p.restarts,
    }));
  }

  /** Sends SIGTERM to every child and waits for all of them (SIGKILL after the grace period). */
  async stop(): Promise<void> {
    this.stopping = true;
    const grace = this.options.stopGraceMs ?? 30_000;
    await Promise.all(
      [...this.processes.values()].map(async (entry) => {
        clearTimeout(entry.restartTimer);
        entry.markReady(); // a start() still waiting must not wait forever
        const child = entry.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) {
          entry.state = 'stopped';
          return;
        }
        entry.state = 'stopping';
        this.line(entry, `stopping (pid ${child.pid})`);
        child.kill('SIGTERM');
        child.kill('SIGCONT'); // a stopped (hung) process acts on SIGTERM only once continued
        const killer = setTimeout(() => {
          this.line(entry, `did not stop within ${seconds(grace)}; killing it`);
          child.kill('SIGKILL');
        }, grace);
        await entry.exited;
        clearTimeout(killer);
      }),
    );
  }

  private line(entry: Supervised, message: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    this.log[level]({ worker: entry.spec.name, pid: entry.child?.pid }, `worker ${entry.spec.name}: ${message}`);
  }

  private launch(entry: Supervised): void {
    if (this.stopping) return;
    const { spec } = entry;
    const child = spawn(spec.command, [...spec.args], {
      // The IPC channel carries the child's "still waiting for …" while it starts.
      stdio: ['pipe', 'inherit', 'inherit', 'ipc'],
      detached: true,
      env: { ...process.env, ...spec.env, [SUPERVISED_ENV]: '1' },
    });
    // Writing nothing to the pipe is the point; an EPIPE after the child died is not an error.
    child.stdin?.on('error', () => undefined);
    child.on('error', () => undefined); // IPC errors after the child died
    entry.child = child;
    entry.state = 'starting';
    entry.startedAt = Date.now();
    entry.lastWaitingAt = undefined;
    entry.waitingFor = undefined;
    child.on('message', (message: unknown) => {
      const said = message as Partial<SupervisorMessage> | null;
      if (entry.child !== child || said?.myelin !== 'waiting' || typeof said.for !== 'string') return;
      entry.lastWaitingAt = Date.now();
      if (entry.waitingFor !== said.for) {
        entry.waitingFor = said.for;
        this.line(entry, `starting (pid ${child.pid}), waiting for the ${said.for}`);
      }
    });
    entry.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.onExit(entry, child, code, signal);
        resolve();
      });
      child.once('error', (err) => {
        this.line(entry, `cannot be started: ${err.message}`, 'error');
        // A process that never started emits no 'exit'.
        if (child.pid === undefined) {
          this.onExit(entry, child, null, null);
          resolve();
        }
      });
    });
    void this.waitUntilUp(entry, child);
  }

  private async waitUntilUp(entry: Supervised, child: ChildProcess): Promise<void> {
    const interval = this.options.healthIntervalMs ?? 100;
    const startTimeoutMs = this.options.startTimeoutMs ?? 60_000;
    const startedAt = Date.now();
    let reportedSlow = false;
    const alive = () => this.isCurrent(entry, child);
    for (;;) {
      if (!alive()) return;
      if (child.pid !== undefined) {
        const answering = entry.spec.health.length === 0 ? [] : await firstHealthy(entry.spec.health);
        if (!alive()) return;
        if (entry.spec.health.length === 0 || answering.length > 0) {
          entry.state = 'running';
          const where = answering.length > 0 ? ` on ${answering.join(', ')}` : '';
          this.line(entry, `${entry.restarts > 0 ? 'restarted' : 'started'} (pid ${child.pid})${where}`);
          entry.markReady();
          if (entry.spec.health.length > 0) void this.watchHealth(entry, child);
          return;
        }
      }
      const now = Date.now();
      if (!reportedSlow && now - startedAt > 30_000 && entry.lastWaitingAt === undefined) {
        reportedSlow = true;
        this.line(entry, `running (pid ${child.pid}) but not answering /health after 30 s`, 'warn');
      }
      // Stuck in start-up: neither up nor saying what it waits for.
      if (now - Math.max(startedAt, entry.lastWaitingAt ?? 0) > startTimeoutMs) {
        const since =
          entry.lastWaitingAt === undefined ? 'after it started' : `after it last said it was waiting for the ${entry.waitingFor}`;
        this.line(
          entry,
          `not answering /health ${seconds(startTimeoutMs)} ${since}; killing it (pid ${child.pid}) to start it again`,
          'warn',
        );
        child.kill('SIGKILL');
        return;
      }
      await new Promise((r) => setTimeout(r, interval));
    }
  }

  /**
   * Probes a running child's `/health`; one that has not answered for `unhealthyAfterMs` (and at
   * least three probes in a row) is hung: it is killed, and restarted like one that crashed.
   */
  private async watchHealth(entry: Supervised, child: ChildProcess): Promise<void> {
    const interval = this.options.watchIntervalMs ?? 5_000;
    const timeout = this.options.healthTimeoutMs ?? 5_000;
    const limit = this.options.unhealthyAfterMs ?? 30_000;
    let failingSince: number | undefined;
    let failures = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, interval).unref());
      if (!this.isCurrent(entry, child) || entry.state !== 'running') return;
      const results = await Promise.all(entry.spec.health.map((endpoint) => probeHealth(endpoint, timeout)));
      if (!this.isCurrent(entry, child) || entry.state !== 'running') return;
      if (results.some((r) => r.ok)) {
        if (failingSince !== undefined) this.line(entry, `answers /health again after ${seconds(Date.now() - failingSince)}`);
        failingSince = undefined;
        failures = 0;
        continue;
      }
      const detail = [...new Set(results.map((r) => r.detail))].join(', ');
      const now = Date.now();
      failures++;
      if (failingSince === undefined) {
        failingSince = now;
        this.line(entry, `not answering /health (${detail}); restarting it if that lasts ${seconds(limit)}`, 'warn');
      }
      if (failures >= 3 && now - failingSince >= limit) {
        this.line(
          entry,
          `not answering /health for ${seconds(Math.round((now - failingSince) / 1000) * 1000)} (${detail}); killing it ` +
            `(pid ${child.pid}) to restart it`,
          'warn',
        );
        child.kill('SIGKILL');
        return;
      }
    }
  }

  /** Whether `child` is still the entry's running process and the supervisor is not stopping. */
  private isCurrent(entry: Supervised, child: ChildProcess): boolean {
    return entry.child === child && child.exitCode === null && child.signalCode === null && !this.stopping;
  }

  private onExit(entry: Supervised, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    // A child that failed to spawn may report both 'error' and 'exit'; one restart is enough.
    if (entry.child !== child || this.exitedChildren.has(child)) return;
    this.exitedChildren.add(child);
    const how = signal !== null ? `killed by ${signal}` : code !== null ? `exited with code ${code}` : 'did not start';
    if (this.stopping) {
      entry.state = 'stopped';
      this.line(entry, `stopped (${how})`);
      return;
    }
    const uptime = Date.now() - entry.startedAt;
    const delay = nextRestartDelay(this.backoff, entry.lastDelayMs, uptime);
    entry.lastDelayMs = delay;
    entry.state = 'waiting';
    this.line(entry, `${how}; restarting in ${seconds(delay)}`, 'warn');
    entry.restartTimer = setTimeout(() => {
      entry.restarts++;
      this.launch(entry);
    }, delay);
  }
}

/** Probes `/health` on each endpoint; returns the labels of those that answered 200. */
export async function firstHealthy(endpoints: readonly Endpoint[], timeoutMs = 1_000): Promise<string[]> {
  const results = await Promise.all(endpoints.map(async (e) => ((await probeHealth(e, timeoutMs)).ok ? e.label : undefined)));
  return results.filter((r): r is string => r !== undefined);
}

export interface HealthResult {
  ok: boolean;
  /** `200 OK`, or why it did not answer. */
  detail: string;
}

/** GET /health on one endpoint. */
export function probeHealth(endpoint: Endpoint, timeoutMs = 1_000): Promise<HealthResult> {
  return new Promise((resolve) => {
    const location = 'socketPath' in endpoint ? { socketPath: endpoint.socketPath } : { host: endpoint.host, port: endpoint.port };
    const req = request({ ...location, path: '/health', method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ ok: res.statusCode === 200, detail: `${res.statusCode} ${body.trim().slice(0, 40)}` }));
      res.on('error', (err) => resolve({ ok: false, detail: err.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, detail: err.code ?? err.message }));
    req.end();
  });
}

/** The supervised processes of a cluster: one `myelin worker` per worker file. */
export function workerProcessSpecs(cluster: Cluster): ProcessSpec[] {
  const shared = cluster.main.origin.files.flatMap((file) => ['-c', file]);
  return cluster.workers.map((worker) => ({
    name: worker.name,
    command: process.execPath,
    args: [MYELIN_BIN, 'worker', ...shared, '-c', worker.file],
    health: worker.config.worker_listeners.flatMap((l) => (l.type === 'http' ? (endpointOfListener(worker.name, l) ?? []) : [])),
  }));
}
