// Our own signing keys as other servers see them: the `GET /_matrix/key/v2/server` answer (spec:
// server-server API §Publishing Keys), valid for `key_refresh_interval` and rebuilt once half of
// that has passed (as Synapse), with retired keys from `old_signing_keys` in `old_verify_keys`.

import type { JsonObject } from '../core/json.js';
import {
  buildOwnServerKeys,
  ownVerifyKeys,
  shouldRebuildOwnServerKeys,
  type OldVerifyKey,
  type ServerVerifyKey,
} from '../core/server-keys.js';
import type { SigningKey } from '../core/signing.js';

export interface OwnServerKeysOptions {
  readonly serverName: string;
  readonly signingKeys: readonly SigningKey[];
  readonly oldKeys: readonly OldVerifyKey[];
  readonly keyRefreshIntervalMs: number;
  readonly now?: () => number;
}

export class OwnServerKeys {
  readonly serverName: string;
  readonly signingKeys: readonly SigningKey[];
  /** Our keys as the signature checks use them (so our own events and requests need no fetch). */
  readonly verifyKeys: readonly ServerVerifyKey[];
  private built: { json: JsonObject; validUntilTs: number } | undefined;
  private readonly now: () => number;

  constructor(private readonly options: OwnServerKeysOptions) {
    this.serverName = options.serverName;
    this.signingKeys = options.signingKeys;
    this.verifyKeys = ownVerifyKeys(options.serverName, options.signingKeys, options.oldKeys);
    this.now = options.now ?? Date.now;
  }

  /** The signed answer to `GET /_matrix/key/v2/server`. */
  answer(): JsonObject {
    const now = this.now();
    if (!this.built || shouldRebuildOwnServerKeys(this.built.validUntilTs, this.options.keyRefreshIntervalMs, now)) {
      const json = buildOwnServerKeys({
        serverName: this.options.serverName,
        signingKeys: this.options.signingKeys,
        oldKeys: this.options.oldKeys,
        now,
        keyRefreshIntervalMs: this.options.keyRefreshIntervalMs,
      });
      this.built = { json, validUntilTs: json.valid_until_ts as number };
    }
    return this.built.json;
  }
}
