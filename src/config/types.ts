// The loaded configuration: the validated keys, with the database and media paths resolved, and
// where each key came from (`load.ts` builds it).

import type { ValidatedConfig } from './schema.js';
import { formatKeyPath, type KeyPath } from './walk.js';

export interface DatabaseConfig {
  name: 'sqlite3' | 'psycopg2' | 'postgres';
  args: NonNullable<ValidatedConfig['database']>['args'];
}

export interface Config extends Omit<ValidatedConfig, 'database' | 'media_store_path'> {
  database: DatabaseConfig;
  media_store_path: string;
  /** Where each key came from, for error messages raised after loading. */
  readonly origin: ConfigOrigin;
}

export class ConfigOrigin {
  constructor(
    /** The files read, in merge order. */
    readonly files: readonly string[],
    private readonly fileOfKey: ReadonlyMap<string, string>,
  ) {}

  /** The file that set the top-level key of `path` (or the first file if none did). */
  fileOf(path: KeyPath): string {
    const top = path[0];
    return (typeof top === 'string' && this.fileOfKey.get(top)) || this.files[0] || '<no config file>';
  }

  /** `file: key.path` — the prefix of every message about a config value. */
  describe(path: KeyPath): string {
    return `${this.fileOf(path)}: ${formatKeyPath(path)}`;
  }
}
