// The streams. Every change a client can sync is a row in one of these, at an integer position
// that only grows. A sync token bundles one position per stream.

import { Errors, type MatrixError } from '../errors.js';

/** The streams that have named writer instances (`stream_writers` in the config). */
export type StreamName = 'events' | 'typing' | 'receipts' | 'account_data' | 'to_device' | 'presence' | 'push_rules' | 'device_lists';

/** Token order is fixed: it is part of every sync token clients hold. */
export const STREAM_NAMES: readonly StreamName[] = [
  'events',
  'typing',
  'receipts',
  'account_data',
  'to_device',
  'presence',
  'push_rules',
  'device_lists',
];

export type StreamPositions = Record<StreamName, number>;

export function zeroPositions(): StreamPositions {
  return { events: 0, typing: 0, receipts: 0, account_data: 0, to_device: 0, presence: 0, push_rules: 0, device_lists: 0 };
}

/** `s<events>_<typing>_<receipts>_<account_data>_<to_device>_<presence>_<push_rules>_<device_lists>` */
export function encodeSyncToken(positions: StreamPositions): string {
  return `s${STREAM_NAMES.map((name) => positions[name]).join('_')}`;
}

export function invalidToken(token: string): MatrixError {
  return Errors.invalidParam(`Invalid stream token: ${token.slice(0, 100)}`);
}

export function decodeSyncToken(token: string): StreamPositions {
  const parts = token.startsWith('s') ? token.slice(1).split('_') : [];
  if (parts.length !== STREAM_NAMES.length || !parts.every((p) => /^\d{1,15}$/.test(p))) throw invalidToken(token);
  const positions = zeroPositions();
  STREAM_NAMES.forEach((name, i) => (positions[name] = Number(parts[i])));
  return positions;
}

/** Positions never go past what exists: a token from the future (or from before a restart of an
 * in-memory stream such as typing) is clamped to now rather than refused. */
export function clampPositions(positions: StreamPositions, current: StreamPositions): StreamPositions {
  const clamped = zeroPositions();
  for (const name of STREAM_NAMES) clamped[name] = Math.min(positions[name], current[name]);
  return clamped;
}
