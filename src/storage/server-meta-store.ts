// Deployment facts stored with the data (table `server_meta`).

import type { Database } from './database.js';

export class ServerNameMismatchError extends Error {
  constructor(stored: string, configured: string) {
    super(
      `this database belongs to server_name "${stored}" but the config says "${configured}"; ` +
        'the server name cannot change after the first start (user ids and aliases contain it)',
    );
    this.name = 'ServerNameMismatchError';
  }
}

export class ServerMetaStore {
  constructor(private readonly db: Database) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.db.get<{ meta_value: string }>('SELECT meta_value FROM server_meta WHERE meta_key = ?', [key]);
    return row?.meta_value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db.run(
      'INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?) ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value',
      [key, value],
    );
  }

  /** Records the server name on first start; afterwards, refuses a different one. */
  async claimServerName(serverName: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run('INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?) ON CONFLICT (meta_key) DO NOTHING', [
        'server_name',
        serverName,
      ]);
      const row = await tx.get<{ meta_value: string }>('SELECT meta_value FROM server_meta WHERE meta_key = ?', ['server_name']);
      if (row && row.meta_value !== serverName) throw new ServerNameMismatchError(row.meta_value, serverName);
    });
  }
}
