// `myelin generate-config`: writes a starting homeserver.yaml for one process on SQLite, and the
// server's signing key beside it.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey, parseSigningKeyFile } from '../core/signing.js';
import { isValidServerName } from '../core/identifiers.js';
import { ConfigError } from './load.js';

export interface GenerateOptions {
  serverName: string;
  configDir: string;
  /** Where the database and media go; defaults to the config directory. */
  dataDir?: string;
  /** Port of the client/federation listener on 127.0.0.1 (default 8008). */
  port?: number;
}

export interface GeneratedConfig {
  configPath: string;
  signingKeyPath: string;
}

export function generateConfig(options: GenerateOptions): GeneratedConfig {
  if (!isValidServerName(options.serverName)) {
    throw new ConfigError([`--server-name: "${options.serverName}" is not a valid server name (e.g. example.com)`]);
  }
  const configDir = resolve(options.configDir);
  const dataDir = resolve(options.dataDir ?? options.configDir);
  const configPath = join(configDir, 'homeserver.yaml');
  if (existsSync(configPath)) {
    throw new ConfigError([`${configPath}: already exists; refusing to overwrite it (remove it first to start over)`]);
  }
  // Readable by this user only, as the files in them: the config holds secrets, the data
  // directory the database and media.
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  // An existing key is kept: replacing it would break the server's identity for federation.
  const signingKeyPath = join(configDir, `${options.serverName}.signing.key`);
  if (existsSync(signingKeyPath)) {
    parseSigningKeyFile(readFileSync(signingKeyPath, 'utf8'));
  } else {
    writeFileSync(signingKeyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
  }

  const config = {
    server_name: options.serverName,
    listeners: [
      {
        port: options.port ?? 8008,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        x_forwarded: true,
        resources: [{ names: ['client', 'federation'], compress: false }],
      },
    ],
    database: { name: 'sqlite3', args: { database: join(dataDir, 'homeserver.db') } },
    signing_key_path: signingKeyPath,
    registration_shared_secret: randomBytes(32).toString('base64url'),
    media_store_path: join(dataDir, 'media_store'),
    enable_registration: false,
  };
  const header = [
    `# Myelin homeserver configuration for ${options.serverName}, generated ${new Date().toISOString()}.`,
    '# The keys are Synapse’s; see the configuration reference in README.md (or `myelin config-reference`).',
    '# Files in a conf.d/ directory beside this one are read after it and override its top-level keys.',
    '',
  ].join('\n');
  writeFileSync(configPath, header + YAML.stringify(config), { mode: 0o600 });
  return { configPath, signingKeyPath };
}
