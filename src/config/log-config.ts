// `log_config` points at a Python logging config in Synapse deployments. We honour the parts that
// carry over: the root level, and the file of a file handler the root logger uses.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Level } from 'pino';
import { ConfigError, parseYamlFile } from './load.js';
import { isPlainObject } from './walk.js';

const LEVELS: Record<string, Level> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
  FATAL: 'fatal',
};

export interface LogSettings {
  level?: Level;
  file?: string;
}

export function readLogConfig(path: string, describeKey: string): LogSettings {
  let data: Record<string, unknown>;
  try {
    data = parseYamlFile(path, readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`${describeKey}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  const settings: LogSettings = {};
  const root = isPlainObject(data.root) ? data.root : {};
  if (typeof root.level === 'string') {
    const level = LEVELS[root.level.toUpperCase()];
    if (!level) throw new ConfigError([`${path}: root.level: expected one of ${Object.keys(LEVELS).join(', ')}, got "${root.level}"`]);
    settings.level = level;
  }
  const handlers = isPlainObject(data.handlers) ? data.handlers : {};
  const used = Array.isArray(root.handlers) ? root.handlers : Object.keys(handlers);
  for (const name of used) {
    const handler = handlers[String(name)];
    if (isPlainObject(handler) && typeof handler.filename === 'string') {
      settings.file = isAbsolute(handler.filename) ? handler.filename : resolve(dirname(path), handler.filename);
      break;
    }
  }
  return settings;
}
