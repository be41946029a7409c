// Which federation sender instance sends to which destination (`federation_sender_instances`,
// Synapse's key): destinations are spread over the listed instances by a stable hash of the
// destination's name, so every process agrees without talking, and a destination's transactions
// always leave from one instance (one in flight at a time). With no list, main sends everything.
//
// Adding an instance moves the destinations it now wins; each destination's acknowledged position
// is in the database, so the new owner catches it up from there and nothing else needs changing.

import { createHash } from 'node:crypto';

/** `destination`'s sender among `instances`: sha256 of the name, modulo their number. */
export function senderInstanceFor(destination: string, instances: readonly string[]): string {
  if (instances.length === 0) throw new Error('no federation sender instances');
  if (instances.length === 1) return instances[0]!;
  const hash = createHash('sha256').update(destination).digest();
  return instances[hash.readUInt32BE(0) % instances.length]!;
}

export class FederationShard {
  private readonly owned = new Map<string, boolean>();

  constructor(
    readonly instanceName: string,
    readonly instances: readonly string[],
  ) {}

  /** Whether this instance sends to `destination`. */
  owns(destination: string): boolean {
    let mine = this.owned.get(destination);
    if (mine === undefined) {
      mine = senderInstanceFor(destination, this.instances) === this.instanceName;
      if (this.owned.size > 100_000) this.owned.clear();
      this.owned.set(destination, mine);
    }
    return mine;
  }
}

/**
 * A short tag of an instance name for transaction ids (unique per destination even if its sender
 * changes), without telling other servers the names of our workers.
 */
export function senderTag(instanceName: string): string {
  return createHash('sha256').update(instanceName).digest('hex').slice(0, 6);
}
