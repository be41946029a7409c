// Opens the configured database backend.

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseConfig } from '../config/types.js';
import type { Logger } from '../util/log.js';
import type { Database } from './database.js';
import { PostgresDatabase } from './postgres.js';
import { SqliteDatabase } from './sqlite.js';

/** `log` hears when the database stops answering and when it is back. */
export function openDatabase(config: DatabaseConfig, log?: Logger): Database {
  if (config.name === 'sqlite3') {
    const file = config.args.database!;
    if (file !== ':memory:') createPrivateFile(file);
    return new SqliteDatabase(file, { log });
  }
  const { args } = config;
  return new PostgresDatabase({
    host: args.host,
    port: args.port,
    user: args.user,
    password: args.password,
    database: args.dbname ?? args.database,
    minConnections: args.cp_min,
    maxConnections: args.cp_max,
    log,
  });
}

/**
 * Creates the SQLite file, and the directories above it, readable by this user only (0600 and
 * 0700, as the signing key): the database holds every message, password hash and token hash.
 * SQLite gives its -wal and -shm files the mode of the database file, so they are 0600 too. An
 * existing file keeps the mode the admin gave it (`myelin check` reports one others can read).
 */
export function createPrivateFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
