// Which lazily loaded member events a device provably holds, for leaving out redundant ones.
//
// With lazy loading a server may skip member events the client already has (spec: client-server
// API §Lazy-loading room members, "redundant membership events"). What a client has is what came
// in the responses along the chain of tokens that led to the `since` it sends, and nothing more:
// a web client that reloads resumes from a token it saved some time ago and has lost everything
// sent after it, and a response lost on the way never arrived at all. So the record is keyed by
// the `next_batch` token of the response that completed it, not by the device alone: a sync from
// `since` = T sees exactly the member events sent along the chain that ended at T. A token with
// no record (restored from long ago, evicted, or served by another process) makes nothing
// redundant; sending a member event again is always allowed, leaving one out wrongly is not.
//
// The record holds event ids, not user ids, so a member whose membership changed is never taken
// for one the client has.

import { LruCache } from '../../util/lru.js';

/** Devices remembered; each keeps its records for its latest few tokens. */
const DEVICES = 10_000;
/** Records per device: the newest token, plus a few older ones for a client retrying a sync. */
const TOKENS_PER_DEVICE = 3;
/** Member events remembered per record; the oldest are forgotten (and sent again if needed). */
const EVENTS_PER_RECORD = 500;

const NOTHING: ReadonlySet<string> = new Set();

export class SentMembersLedger {
  private readonly devices = new LruCache<string, LruCache<string, ReadonlySet<string>>>(DEVICES);

  /** The member events the device holds when it syncs from `since`: none when not known. */
  heldAt(userId: string, deviceId: string, since: string | undefined): ReadonlySet<string> {
    if (since === undefined) return NOTHING;
    return this.devices.get(deviceKey(userId, deviceId))?.get(since) ?? NOTHING;
  }

  /**
   * The response ending at `nextBatch` was computed from `held` (what the device had at its
   * `since`; nothing for an initial or full-state sync) and carried `sent`. Records are never
   * changed once made, so a record shared by several tokens costs one set.
   */
  record(userId: string, deviceId: string, nextBatch: string, held: ReadonlySet<string>, sent: ReadonlySet<string>): void {
    const key = deviceKey(userId, deviceId);
    let tokens = this.devices.get(key);
    if (!tokens) {
      tokens = new LruCache(TOKENS_PER_DEVICE);
      this.devices.set(key, tokens);
    }
    let next = held;
    if ([...sent].some((id) => !held.has(id))) {
      const merged = new Set(held);
      for (const id of sent) {
        merged.delete(id);
        merged.add(id);
      }
      for (const oldest of merged) {
        if (merged.size <= EVENTS_PER_RECORD) break;
        merged.delete(oldest);
      }
      next = merged;
    }
    tokens.set(nextBatch, next);
  }
}

function deviceKey(userId: string, deviceId: string): string {
  return `${userId}\u0000${deviceId}`;
}
