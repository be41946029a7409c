// The supervised side of `myelin start`'s supervisor (src/workers/supervisor.ts): how a process
// started by it knows it is supervised, and what it tells the supervisor while it starts.

/** Set in a supervised child's environment: its stdin closing means the supervisor is gone. */
export const SUPERVISED_ENV = 'MYELIN_SUPERVISED';

/** What a supervised child tells its supervisor over the IPC channel while it starts. */
export interface SupervisorMessage {
  myelin: 'waiting';
  /** What it waits for (e.g. `database`). */
  for: string;
}

/**
 * Tells the supervisor (if this process has one) that it is still starting and waiting for
 * something outside it, so it is not taken for a process stuck in start-up and restarted.
 */
export function reportWaitingToSupervisor(what: string): void {
  if (process.env[SUPERVISED_ENV] !== '1' || typeof process.send !== 'function' || !process.connected) return;
  const message: SupervisorMessage = { myelin: 'waiting', for: what };
  try {
    process.send(message, undefined, {}, () => undefined);
  } catch {
    // The supervisor is gone: the stdin pipe tells this process to stop.
  }
}
