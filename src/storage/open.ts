// Opens the configured database backend.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseConfig } from '../config/load.js';
import type { Logger } from '../util/log.js';
import type { Database } from './database.js';
import { PostgresDatabase } from './postgres.js';
import { SqliteDatabase } from './sqlite.js';

/** `log` hears when the database stops answering and when it is back. */
export function openDatabase(config: DatabaseConfig, log?: Logger): Database {
  if (config.name === 'sqlite3') {
    const file = config.args.database!;
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
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

export function isPostgres(config: DatabaseConfig): boolean {
  return config.name !== 'sqlite3';
}
