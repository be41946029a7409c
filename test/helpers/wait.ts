// Waiting for a condition in client tests: by polling, or on every matrix-js-sdk event. Each wait
// is bounded by a generous timeout and fails naming what it waited for; none measures speed.

import { ClientEvent, RoomEvent, RoomMemberEvent, type MatrixClient } from 'matrix-js-sdk';

/** Polls `check` until it returns something truthy; rejects after `ms`, with the last error. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let lastError: string | undefined;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The SDK events after which a check is tried again. */
const WAKING_EVENTS = [
  ClientEvent.Sync,
  ClientEvent.ToDeviceEvent,
  ClientEvent.Room,
  RoomEvent.Timeline,
  RoomEvent.Receipt,
  RoomMemberEvent.Typing,
  RoomMemberEvent.Membership,
  RoomMemberEvent.Name,
];

/** Resolves when `check` passes, re-checking on every SDK event; rejects after `ms`. */
export function waitFor<T>(client: MatrixClient, check: () => T | undefined | false, what: string, ms = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      let value: T | undefined | false;
      try {
        value = check();
      } catch {
        value = undefined;
      }
      if (value !== undefined && value !== false) {
        cleanup();
        resolve(value);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const emitter = client as unknown as { on(e: string, f: () => void): void; off(e: string, f: () => void): void };
    const cleanup = () => {
      clearTimeout(timer);
      for (const e of WAKING_EVENTS) emitter.off(e, attempt);
    };
    for (const e of WAKING_EVENTS) emitter.on(e, attempt);
    attempt();
  });
}
