// Per-user and ephemeral streams: typing, receipts and read markers, presence, account data and
// tags, to-device messages, push rules (and the notifications they produce), filters.

import type { CoreDeps } from '../core.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EphemeralServices {}

export async function createEphemeralServices(_core: CoreDeps): Promise<EphemeralServices> {
  return {};
}
