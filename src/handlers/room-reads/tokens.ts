// Pagination tokens for /messages, /context and /members?at=.
//
// Each room's history is a line ordered by events-stream position (one writer per room), so a
// position is all a token needs: `s<position>` stands for the gap just after the event at
// `position`. Paginating backwards from it returns events at `position` and below; forwards, the
// events above it. Positions live in the database, so tokens stay valid across restarts.
//
// Clients also hand us tokens minted elsewhere, and we read the events position out of them:
//   - a full sync token (`s<events>_<typing>_…`, from /sync's `next_batch`/`prev_batch`);
//   - Synapse's topological token `t<depth>-<stream>` (SyTest and clients migrated from Synapse
//     send these), optionally followed by `_`-separated positions of other streams: its stream
//     part is a position in the same sense.

import { Errors } from '../../errors.js';
import { decodeSyncToken } from '../../streams/streams.js';

// Backfilled history sits at negative positions (see federation/pdu-intake.ts), so `s-<n>` is one too.
const POSITION_TOKEN = /^s(-?\d{1,15})$/;
const TOPOLOGICAL_TOKEN = /^t\d{1,15}-(\d{1,15})(?:_\d{1,15})*$/;

/** The events-stream position a pagination or sync token stands for; 400 M_INVALID_PARAM if it is neither. */
export function positionOfToken(token: string): number {
  const plain = POSITION_TOKEN.exec(token);
  if (plain) return Number(plain[1]);
  const topological = TOPOLOGICAL_TOKEN.exec(token);
  if (topological) return Number(topological[1]);
  if (token.startsWith('s') && token.includes('_')) {
    try {
      return decodeSyncToken(token).events;
    } catch {
      // Fall through to the error naming the parameter.
    }
  }
  throw Errors.invalidParam(`Invalid pagination token: ${token.slice(0, 100)}`);
}

export function tokenOfPosition(position: number): string {
  return `s${position}`;
}
