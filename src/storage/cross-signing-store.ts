// Cross-signing keys (master, self-signing, user-signing) and the signatures uploaded for keys
// (schema 0040).

import type { Database, Queryable } from './database.js';
import { inBatches, placeholders } from './batches.js';

export type CrossSigningKeyType = 'master' | 'self_signing' | 'user_signing';

export interface CrossSigningKeyRow {
  user_id: string;
  key_type: CrossSigningKeyType;
  public_key: string;
  key_json: string;
}

export interface SignatureRow {
  /** The signer. */
  user_id: string;
  /** The signer's key, `ed25519:<device id or public key>`. */
  key_id: string;
  target_user_id: string;
  /** A device id, or a cross-signing key's public key. */
  target_device_id: string;
  signature: string;
}

export class CrossSigningStore {
  constructor(private readonly db: Database) {}

  async keysOf(userIds: readonly string[], tx: Queryable = this.db): Promise<CrossSigningKeyRow[]> {
    return this.keysWhere(tx, userIds, '', []);
  }

  /** The keys of `userIds` that `viewer` may see: master and self-signing keys, and its own user-signing key. */
  keysSeenBy(viewer: string, userIds: readonly string[]): Promise<CrossSigningKeyRow[]> {
    return this.keysWhere(this.db, userIds, " AND (key_type <> 'user_signing' OR user_id = ?)", [viewer]);
  }

  private async keysWhere(
    tx: Queryable,
    userIds: readonly string[],
    condition: string,
    params: readonly string[],
  ): Promise<CrossSigningKeyRow[]> {
    const rows: CrossSigningKeyRow[] = [];
    for (const batch of inBatches(userIds)) {
      rows.push(
        ...(await tx.all<CrossSigningKeyRow>(
          `SELECT user_id, key_type, public_key, key_json FROM e2e_cross_signing_keys
           WHERE user_id IN (${placeholders(batch.length)})${condition}`,
          [...batch, ...params],
        )),
      );
    }
    return rows;
  }

  async key(userId: string, keyType: CrossSigningKeyType, tx: Queryable = this.db): Promise<CrossSigningKeyRow | undefined> {
    return tx.get<CrossSigningKeyRow>(
      'SELECT user_id, key_type, public_key, key_json FROM e2e_cross_signing_keys WHERE user_id = ? AND key_type = ?',
      [userId, keyType],
    );
  }

  async setKey(tx: Queryable, userId: string, keyType: CrossSigningKeyType, publicKey: string, keyJson: string): Promise<void> {
    await tx.run(
      `INSERT INTO e2e_cross_signing_keys (user_id, key_type, public_key, key_json) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, key_type) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json`,
      [userId, keyType, publicKey, keyJson],
    );
  }

  async addSignatures(tx: Queryable, rows: readonly SignatureRow[]): Promise<void> {
    for (const row of rows) {
      await tx.run(
        `INSERT INTO e2e_cross_signing_signatures (user_id, key_id, target_user_id, target_device_id, signature) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (target_user_id, target_device_id, user_id, key_id) DO UPDATE SET signature = excluded.signature`,
        [row.user_id, row.key_id, row.target_user_id, row.target_device_id, row.signature],
      );
    }
  }

  /** Every signature of the devices (they are being deleted, with their keys). */
  async deleteSignaturesOfDevices(tx: Queryable, userId: string, deviceIds: readonly string[]): Promise<void> {
    for (const batch of inBatches(deviceIds)) {
      await tx.run(
        `DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND target_device_id IN (${placeholders(batch.length)})`,
        [userId, ...batch],
      );
    }
  }

  /** Signatures users made on their own devices (with their self-signing key), for `/keys/query`. */
  async selfSignaturesOf(userIds: readonly string[]): Promise<SignatureRow[]> {
    const rows: SignatureRow[] = [];
    for (const batch of inBatches(userIds)) {
      rows.push(
        ...(await this.db.all<SignatureRow>(
          `SELECT user_id, key_id, target_user_id, target_device_id, signature FROM e2e_cross_signing_signatures
           WHERE target_user_id IN (${placeholders(batch.length)}) AND user_id = target_user_id`,
          batch,
        )),
      );
    }
    return rows;
  }

  /** Signatures `signer` made on keys of `targetUserIds`. */
  async signaturesBy(signer: string, targetUserIds: readonly string[]): Promise<SignatureRow[]> {
    const rows: SignatureRow[] = [];
    for (const batch of inBatches(targetUserIds)) {
      rows.push(
        ...(await this.db.all<SignatureRow>(
          `SELECT user_id, key_id, target_user_id, target_device_id, signature FROM e2e_cross_signing_signatures
           WHERE user_id = ? AND target_user_id IN (${placeholders(batch.length)})`,
          [signer, ...batch],
        )),
      );
    }
    return rows;
  }
}
