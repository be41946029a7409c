import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import pino from 'pino';
import { nextRestartDelay, probeHealth, Supervisor, type BackoffPolicy, type ProcessSpec } from '../../src/workers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A small child process in a worker's place, for what a real worker does not do on demand: it
 * answers /health on a UNIX socket (only after LISTEN_AFTER_MS when set, never with NO_LISTEN,
 * telling the supervisor it waits for "the database" meanwhile with WAITING); exits with code 1
 * after CRASH_AFTER_MS when set; ignores SIGTERM when IGNORE_TERM is set. Real workers under the
 * supervisor (kill -9, SIGSTOP and restart) are tested in test/workers/processes.test.ts and
 * test/workers/database-outage.test.ts.
 */
const CHILD = `
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';
const path = process.argv[2];
rmSync(path, { force: true });
const server = createServer((req, res) => res.end(req.url === '/health' ? 'OK' : String(process.pid)));
let waiting;
if (process.env.WAITING) waiting = setInterval(() => process.send({ myelin: 'waiting', for: 'database' }), 100);
const listen = () => {
  clearInterval(waiting);
  server.listen(path);
};
if (!process.env.NO_LISTEN) {
  if (process.env.LISTEN_AFTER_MS) setTimeout(listen, Number(process.env.LISTEN_AFTER_MS));
  else listen();
} else setInterval(() => undefined, 1000);
if (process.env.CRASH_AFTER_MS) setTimeout(() => process.exit(1), Number(process.env.CRASH_AFTER_MS));
process.on('SIGTERM', () => {
  if (process.env.IGNORE_TERM) return;
  server.close(() => process.exit(0));
});
`;

function childSpec(name: string, env: NodeJS.ProcessEnv = {}): ProcessSpec & { socket: string } {
  const dir = tempDir('myelin-supervised-');
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  const socket = join(dir, `${name}.sock`);
  return {
    name,
    command: process.execPath,
    args: [script, socket],
    health: [{ instance: name, socketPath: socket, label: `unix:${socket}` }],
    env,
    socket,
  };
}

function capturingLogger() {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push((JSON.parse(line) as { msg: string }).msg);
      for (const wake of waiters) wake();
      done();
    },
  });
  return {
    log: pino({ level: 'info' }, stream),
    lines,
    /** Resolves with the first line (from index `from`) matching `pattern`. */
    waitFor(pattern: RegExp, from = 0, ms = 15_000): Promise<{ line: string; index: number }> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const index = lines.findIndex((l, i) => i >= from && pattern.test(l));
          if (index >= 0) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve({ line: lines[index]!, index });
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no line matching ${pattern}; lines:\n${lines.join('\n')}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

const FAST: BackoffPolicy = { initialMs: 100, maxMs: 400, resetAfterMs: 2_000 };

describe('restart backoff', () => {
  test('1 s, doubling to 30 s while the process keeps failing; back to 1 s once it stayed up a minute', () => {
    let delay: number | undefined;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      delay = nextRestartDelay({ initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 }, delay, 500);
      delays.push(delay);
    }
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(nextRestartDelay({ initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 }, 30_000, 61_000), 1_000);
  });
});

describe('supervisor', () => {
  test('starts each process, reports it up once /health answers, and restarts one killed with SIGKILL', async () => {
    const { log, lines, waitFor } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST });
    const spec = childSpec('generic1');
    try {
      await supervisor.start([spec]);
      const started = await waitFor(/^worker generic1: started \(pid (\d+)\) on unix:.*generic1\.sock$/);
      const firstPid = Number(/pid (\d+)/.exec(started.line)![1]);
      assert.equal(supervisor.status()[0]!.pid, firstPid);
      assert.ok((await probeHealth(spec.health[0]!)).ok);

      process.kill(firstPid, 'SIGKILL');
      const killed = await waitFor(/^worker generic1: killed by SIGKILL; restarting in 0\.1 s$/, started.index);
      const restarted = await waitFor(/^worker generic1: restarted \(pid (\d+)\) on unix:/, killed.index);
      const secondPid = Number(/pid (\d+)/.exec(restarted.line)![1]);
      assert.notEqual(secondPid, firstPid);
      assert.ok((await probeHealth(spec.health[0]!)).ok);
      assert.equal(supervisor.status()[0]!.restarts, 1);
    } finally {
      await supervisor.stop();
    }
    assert.match(lines.at(-1)!, /^worker generic1: stopped \(exited with code 0\)$/);
  });

  test('a process that keeps crashing is restarted with doubling delays up to the cap', async () => {
    const { log, waitFor } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST });
    try {
      void supervisor.start([childSpec('crashy', { CRASH_AFTER_MS: '50' })]);
      let from = 0;
      for (const delay of ['0.1', '0.2', '0.4', '0.4']) {
        const line = await waitFor(new RegExp(`^worker crashy: exited with code 1; restarting in ${delay.replace('.', '\\.')} s$`), from);
        from = line.index + 1;
      }
    } finally {
      await supervisor.stop();
    }
  });

  test('stop: SIGTERM to every process, waits for them; one that ignores it is killed after the grace period', async () => {
    const { log, lines } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST, stopGraceMs: 500 });
    const polite = childSpec('polite');
    const stubborn = childSpec('stubborn', { IGNORE_TERM: '1' });
    await supervisor.start([polite, stubborn]);
    const started = Date.now();
    await supervisor.stop();
    assert.ok(Date.now() - started >= 450, 'waited for the grace period');
    assert.ok(lines.includes('worker polite: stopped (exited with code 0)'), lines.join('\n'));
    assert.ok(lines.includes('worker stubborn: did not stop within 0.5 s; killing it'), lines.join('\n'));
    assert.ok(lines.includes('worker stubborn: stopped (killed by SIGKILL)'), lines.join('\n'));
    assert.deepEqual(
      supervisor.status().map((s) => s.state),
      ['stopped', 'stopped'],
    );
    assert.equal((await probeHealth(polite.health[0]!)).ok, false);
  });

  test('a process that stops answering /health (hung: SIGSTOP) is killed and restarted', async () => {
    const { log, waitFor } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST, watchIntervalMs: 100, healthTimeoutMs: 200, unhealthyAfterMs: 1_000 });
    const spec = childSpec('hung');
    try {
      await supervisor.start([spec]);
      const started = await waitFor(/^worker hung: started \(pid (\d+)\)/);
      const pid = Number(/pid (\d+)/.exec(started.line)![1]);
      process.kill(pid, 'SIGSTOP');
      const noticed = await waitFor(/^worker hung: not answering \/health \(ETIMEDOUT\); restarting it if that lasts 1 s$/, started.index);
      const killing = await waitFor(
        new RegExp(`^worker hung: not answering /health for \\d+ s \\(ETIMEDOUT\\); killing it \\(pid ${pid}\\) to restart it$`),
        noticed.index,
      );
      const killed = await waitFor(/^worker hung: killed by SIGKILL; restarting in 0\.1 s$/, killing.index);
      const restarted = await waitFor(/^worker hung: restarted \(pid (\d+)\)/, killed.index);
      assert.notEqual(Number(/pid (\d+)/.exec(restarted.line)![1]), pid);
      assert.ok((await probeHealth(spec.health[0]!)).ok);
    } finally {
      await supervisor.stop();
    }
  });

  test('a process that never comes up is restarted after the start timeout; one that says it waits for its database is not', async () => {
    const { log, lines, waitFor } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST, startTimeoutMs: 1_500 });
    const stuck = childSpec('stuck', { NO_LISTEN: '1' });
    const patient = childSpec('patient', { WAITING: '1', LISTEN_AFTER_MS: '4000' });
    try {
      void supervisor.start([stuck, patient]);
      await waitFor(/^worker stuck: not answering \/health 1\.5 s after it started; killing it \(pid \d+\) to start it again$/);
      await waitFor(/^worker stuck: killed by SIGKILL; restarting in 0\.1 s$/);
      await waitFor(/^worker patient: starting \(pid \d+\), waiting for the database$/);
      await waitFor(/^worker patient: started \(pid \d+\)/, 0, 20_000);
      assert.ok(!lines.some((l) => l.startsWith('worker patient:') && l.includes('killing it')), lines.join('\n'));
      assert.equal(supervisor.status().find((p) => p.name === 'patient')!.restarts, 0);
    } finally {
      await supervisor.stop();
    }
  });

  test('a process that cannot be started is retried like one that crashed', async () => {
    const { log, waitFor } = capturingLogger();
    const supervisor = new Supervisor({ log, backoff: FAST });
    try {
      void supervisor.start([{ name: 'ghost', command: join(tempDir(), 'no-such-program'), args: [], health: [] }]);
      await waitFor(/^worker ghost: cannot be started: spawn .*ENOENT$/);
      await waitFor(/^worker ghost: did not start; restarting in 0\.1 s$/);
    } finally {
      await supervisor.stop();
    }
  });
});
