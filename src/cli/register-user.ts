// `myelin register-user`: creates an account through the running server's shared-secret admin API,
// as Synapse's `register_new_matrix_user` does. It reads the config for the secret and for where
// the server listens (a client listener: TCP port or UNIX socket), so it works when public
// registration is off and needs no database access of its own.

import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { ListenerConfig } from '../config/schema.js';
import { registrationMac } from '../handlers/accounts/shared-secret.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './args.js';

export const REGISTER_USER_USAGE = `Usage:
  myelin register-user -c CONFIG --user NAME --password PASSWORD [--admin] [--user-type TYPE] [--url URL]

Registers a user on the running homeserver with its registration_shared_secret. The server is
reached on the first client listener of the config (TCP or UNIX socket) unless --url is given.
Prints the new user id.
`;

/** Where to send the admin API requests. */
export type ServerLocation = { socketPath: string } | { url: URL };

class CommandError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export async function registerUserCommand(args: string[]): Promise<number> {
  try {
    const options = parseOptions(args);
    const config = loadConfig(options.configPaths);
    const secret = config.registration_shared_secret;
    if (!secret) {
      throw new CommandError(
        `${config.origin.describe(['registration_shared_secret'])}: not set; shared-secret registration needs it`,
        EXIT_USAGE,
      );
    }
    const location = options.url ? { url: parseUrl(options.url) } : clientListenerLocation(config);
    const userId = await registerUser(location, secret, options);
    process.stdout.write(`${userId}\n`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    process.stderr.write(
      `myelin register-user: ${err.message}\n` +
        (err.status === EXIT_USAGE && err.message.startsWith('usage') ? `\n${REGISTER_USER_USAGE}` : ''),
    );
    return err.status;
  }
}

interface Options {
  configPaths: string[];
  user: string;
  password: string;
  admin: boolean;
  userType?: string;
  url?: string;
}

function parseOptions(args: string[]): Options {
  let values;
  try {
    values = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        'config-path': { type: 'string', short: 'c', multiple: true },
        user: { type: 'string', short: 'u' },
        password: { type: 'string', short: 'p' },
        admin: { type: 'boolean', short: 'a', default: false },
        'user-type': { type: 'string', short: 't' },
        url: { type: 'string' },
      },
    }).values;
  } catch (err) {
    throw new CommandError(`usage: ${(err as Error).message}`, EXIT_USAGE);
  }
  const configPaths = values['config-path'] ?? [];
  if (configPaths.length === 0) throw new CommandError('usage: -c CONFIG is required', EXIT_USAGE);
  if (!values.user) throw new CommandError('usage: --user NAME is required', EXIT_USAGE);
  if (!values.password) throw new CommandError('usage: --password PASSWORD is required', EXIT_USAGE);
  return {
    configPaths,
    user: values.user,
    password: values.password,
    admin: values.admin ?? false,
    ...(values['user-type'] ? { userType: values['user-type'] } : {}),
    ...(values.url ? { url: values.url } : {}),
  };
}

function parseUrl(text: string): URL {
  try {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // reported below
  }
  throw new CommandError(`usage: --url: expected an http(s) URL, got "${text}"`, EXIT_USAGE);
}

/** The first HTTP listener of the main process that serves the client API. */
export function clientListenerLocation(config: Config): ServerLocation {
  const listener = config.listeners.find((l) => l.type === 'http' && l.resources.some((r) => r.names.includes('client')));
  const where = config.origin.describe(['listeners']);
  if (!listener) throw new CommandError(`${where}: no http listener serves the client resource; pass --url`, EXIT_USAGE);
  if (listener.path !== undefined) return { socketPath: listener.path };
  if (!listener.port) throw new CommandError(`${where}: the client listener's port is chosen at start-up (port 0); pass --url`, EXIT_USAGE);
  const host = localAddressOf(listener);
  return { url: new URL(`http://${host.includes(':') ? `[${host}]` : host}:${listener.port}`) };
}

/** An address of this machine the listener accepts connections on. */
function localAddressOf(listener: ListenerConfig): string {
  const addresses = listener.bind_addresses ?? (listener.bind_address ? [listener.bind_address] : ['::', '0.0.0.0']);
  if (addresses.includes('0.0.0.0') || addresses.includes('127.0.0.1')) return '127.0.0.1';
  if (addresses.includes('::') || addresses.includes('::1')) return '::1';
  return addresses[0] ?? '127.0.0.1';
}

async function registerUser(location: ServerLocation, secret: string, options: Options): Promise<string> {
  const path = '/_synapse/admin/v1/register';
  const nonceResponse = await call(location, 'GET', path);
  const nonce = nonceResponse.nonce;
  if (typeof nonce !== 'string') throw new CommandError('the server answered without a nonce', EXIT_FAILURE);
  const mac = registrationMac(secret, {
    nonce,
    username: options.user,
    password: options.password,
    admin: options.admin,
    userType: options.userType ?? null,
  });
  const registered = await call(location, 'POST', path, {
    nonce,
    username: options.user,
    password: options.password,
    admin: options.admin,
    user_type: options.userType ?? null,
    mac,
  });
  if (typeof registered.user_id !== 'string') throw new CommandError('the server answered without a user id', EXIT_FAILURE);
  return registered.user_id;
}

function call(location: ServerLocation, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) };
  const target = 'socketPath' in location ? location.socketPath : location.url.origin;
  let options: RequestOptions;
  let send = httpRequest;
  if ('socketPath' in location) {
    options = { socketPath: location.socketPath, path, method, headers };
  } else {
    const base = location.url.pathname.replace(/\/+$/, '');
    options = { hostname: location.url.hostname.replace(/^\[|\]$/g, ''), port: location.url.port, path: `${base}${path}`, method, headers };
    if (location.url.protocol === 'https:') send = httpsRequest;
  }
  return new Promise((resolve, reject) => {
    const req = send(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          const parsed: unknown = JSON.parse(text);
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
        } catch {
          // not JSON: reported with the status below
        }
        if (res.statusCode === 200) return resolve(json);
        const reason =
          typeof json.error === 'string' ? `: ${json.error}${typeof json.errcode === 'string' ? ` (${json.errcode})` : ''}` : '';
        reject(new CommandError(`${method} ${path} failed with HTTP ${res.statusCode}${reason}`, EXIT_FAILURE));
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new CommandError(`cannot reach the homeserver at ${target}: ${err.code ?? err.message}`, EXIT_FAILURE)),
    );
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
