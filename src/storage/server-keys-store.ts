// Other servers' signing keys and their signed key answers (tables `server_verify_keys` and
// `server_keys_json`, schema 0050).

import type { JsonObject } from '../core/json.js';
import { isJsonObject } from '../core/json.js';
import type { ServerVerifyKey } from '../core/server-keys.js';
import type { Database } from './database.js';
import { inBatches, placeholders } from './batches.js';

interface VerifyKeyRow {
  server_name: string;
  key_id: string;
  public_key: string;
  valid_until_ts: number;
  expired_ts: number | null;
}

/** A stored `/_matrix/key/v2/server` answer. */
export interface StoredKeysAnswer {
  readonly serverName: string;
  /** The answer as its server signed it. */
  readonly json: JsonObject;
  /** `valid_until_ts` as published. */
  readonly validUntilTs: number;
  /** When we received it. */
  readonly fetchedAtTs: number;
  /** The server itself, or the notary that passed it on. */
  readonly fromServer: string;
}

function toKey(row: VerifyKeyRow): ServerVerifyKey {
  return {
    serverName: row.server_name,
    keyId: row.key_id,
    publicKey: row.public_key,
    validUntilTs: Number(row.valid_until_ts),
    old: row.expired_ts !== null,
  };
}

/** The answer with only its own server's signatures (a notary's are not ours to pass on). */
function ownSignaturesOnly(json: JsonObject, serverName: string): JsonObject {
  const signatures = isJsonObject(json.signatures) ? json.signatures : {};
  const own = signatures[serverName];
  return { ...json, signatures: own === undefined ? {} : { [serverName]: own } };
}

export class ServerKeysStore {
  constructor(private readonly db: Database) {}

  /** The stored keys of `serverName`: all of them, or those of `keyIds`. */
  async keysOf(serverName: string, keyIds?: readonly string[]): Promise<ServerVerifyKey[]> {
    const columns = 'server_name, key_id, public_key, valid_until_ts, expired_ts';
    if (keyIds === undefined) {
      const rows = await this.db.all<VerifyKeyRow>(`SELECT ${columns} FROM server_verify_keys WHERE server_name = ?`, [serverName]);
      return rows.map(toKey);
    }
    const keys: ServerVerifyKey[] = [];
    for (const batch of inBatches(keyIds)) {
      const rows = await this.db.all<VerifyKeyRow>(
        `SELECT ${columns} FROM server_verify_keys WHERE server_name = ? AND key_id IN (${placeholders(batch.length)})`,
        [serverName, ...batch],
      );
      keys.push(...rows.map(toKey));
    }
    return keys;
  }

  /**
   * Stores a checked answer and the keys taken from it. A key seen before keeps the longer
   * validity when its public key is the same (the merge rule of `mergeVerifyKey`), and is replaced
   * when the server now publishes another key under that id. The answer itself replaces the stored
   * one unless the stored one is valid for longer.
   */
  async storeAnswer(
    serverName: string,
    json: JsonObject,
    validUntilTs: number,
    keys: readonly ServerVerifyKey[],
    fetchedAtTs: number,
    fromServer: string,
  ): Promise<void> {
    const expiredTs = (key: ServerVerifyKey): number | null => {
      if (!key.old) return null;
      const old = isJsonObject(json.old_verify_keys) ? json.old_verify_keys[key.keyId] : undefined;
      return isJsonObject(old) && typeof old.expired_ts === 'number' ? old.expired_ts : key.validUntilTs;
    };
    await this.db.transaction(async (tx) => {
      for (const key of keys) {
        await tx.run(
          `INSERT INTO server_verify_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts, from_server)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (server_name, key_id) DO UPDATE SET
             public_key = excluded.public_key, valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,
             fetched_ts = excluded.fetched_ts, from_server = excluded.from_server
           WHERE server_verify_keys.public_key <> excluded.public_key OR excluded.valid_until_ts >= server_verify_keys.valid_until_ts`,
          [serverName, key.keyId, key.publicKey, key.validUntilTs, expiredTs(key), fetchedAtTs, fromServer],
        );
      }
      await tx.run(
        `INSERT INTO server_keys_json (server_name, key_json, valid_until_ts, fetched_ts, from_server) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (server_name) DO UPDATE SET
           key_json = excluded.key_json, valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts,
           from_server = excluded.from_server
         WHERE excluded.valid_until_ts >= server_keys_json.valid_until_ts`,
        [serverName, JSON.stringify(ownSignaturesOnly(json, serverName)), validUntilTs, fetchedAtTs, fromServer],
      );
    });
  }

  /** The stored answer of `serverName`, if any. */
  async answerOf(serverName: string): Promise<StoredKeysAnswer | undefined> {
    const row = await this.db.get<{ key_json: string; valid_until_ts: number; fetched_ts: number; from_server: string }>(
      'SELECT key_json, valid_until_ts, fetched_ts, from_server FROM server_keys_json WHERE server_name = ?',
      [serverName],
    );
    if (!row) return undefined;
    return {
      serverName,
      json: JSON.parse(row.key_json) as JsonObject,
      validUntilTs: Number(row.valid_until_ts),
      fetchedAtTs: Number(row.fetched_ts),
      fromServer: row.from_server,
    };
  }
}
