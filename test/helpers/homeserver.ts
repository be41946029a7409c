// An in-process homeserver for integration tests: the real HTTP listener on a free TCP port, a
// real SQLite (or PostgreSQL) database in a temporary directory, and helpers to make users and
// requests. Tests that exercise the `myelin` command itself or real client libraries start the
// real process instead (test/helpers/myelin.ts).

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { hashPassword } from '../../src/handlers/kernel/auth.js';
import { startHomeserver, type RunningHomeserver } from '../../src/process/homeserver.js';
import { request, type TestResponse } from './http.js';
import { tempDir } from './tmp.js';

export interface TestUser {
  userId: string;
  accessToken: string;
  deviceId: string;
  password: string;
}

export interface TestHomeserver {
  baseUrl: string;
  serverName: string;
  homeserver: RunningHomeserver;
  dir: string;
  /** Creates a user directly (and a logged-in device) without going through /register. */
  createUser(localpart: string, options?: { password?: string; admin?: boolean; displayname?: string }): Promise<TestUser>;
  /** A request with an optional access token and JSON body. */
  call(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> },
  ): Promise<TestResponse>;
  stop(): Promise<void>;
}

const generous = { per_second: 10_000, burst_count: 100_000 };
export const GENEROUS_RATE_LIMITS = {
  rc_message: generous,
  rc_registration: generous,
  rc_login: { address: generous, account: generous, failed_attempts: generous },
  rc_joins: { local: generous, remote: generous },
};

export interface TestHomeserverOptions {
  serverName?: string;
  /** Config keys over the defaults. */
  config?: Record<string, unknown>;
  /** The config's `database` section; by default SQLite in the homeserver's directory. */
  database?: Record<string, unknown>;
  /** A directory given again (with its signing key and database) restarts the same server. */
  dir?: string;
}

export async function startTestHomeserver(options: TestHomeserverOptions = {}): Promise<TestHomeserver> {
  const dir = options.dir ?? tempDir('myelin-hs-');
  const serverName = options.serverName ?? 'test.local';
  if (!existsSync(join(dir, 'signing.key'))) writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
  const config = {
    server_name: serverName,
    signing_key_path: join(dir, 'signing.key'),
    listeners: [{ port: 0, bind_addresses: ['127.0.0.1'], type: 'http', resources: [{ names: ['client', 'federation'] }] }],
    database: options.database ?? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
    registration_shared_secret: 'test-shared-secret',
    enable_registration: true,
    enable_registration_without_verification: true,
    // Tests make many requests from one address in quick succession; rate-limit tests lower these.
    ...GENEROUS_RATE_LIMITS,
    ...options.config,
  };
  writeFileSync(join(dir, 'homeserver.yaml'), YAML.stringify(config));
  const loaded = loadConfig([join(dir, 'homeserver.yaml')], { warn: () => undefined });
  const log = pino({ level: process.env.MYELIN_TEST_LOG_LEVEL ?? 'silent' });
  const homeserver = await startHomeserver(loaded, log);
  const baseUrl = homeserver.listeners[0]!.addresses[0]!;
  const target = { baseUrl };
  const services = homeserver.services;

  return {
    baseUrl,
    serverName,
    homeserver,
    dir,
    async createUser(localpart, userOptions = {}) {
      const userId = `@${localpart}:${serverName}`;
      const password = userOptions.password ?? `password-of-${localpart}`;
      const created = await services.stores.users.createUser(
        {
          userId,
          passwordHash: await hashPassword(password),
          isAdmin: userOptions.admin,
          displayname: userOptions.displayname ?? localpart,
        },
        Date.now(),
      );
      if (!created) throw new Error(`user ${userId} exists`);
      const session = await services.auth.createSession(userId);
      return { userId, password, ...session };
    },
    call(method, path, callOptions = {}) {
      const body = callOptions.rawBody ?? (callOptions.body === undefined ? undefined : JSON.stringify(callOptions.body));
      return request(target, method, path, {
        ...(body === undefined ? {} : { body }),
        headers: {
          ...(callOptions.token ? { Authorization: `Bearer ${callOptions.token}` } : {}),
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...callOptions.headers,
        },
      });
    },
    stop: () => homeserver.stop(1000),
  };
}
