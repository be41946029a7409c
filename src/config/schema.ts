// The one definition of the homeserver configuration. Validation, defaults, the `Config` type
// and the README's configuration reference (`myelin config-reference`) all come from here.
//
// Key names and meanings are Synapse's, so that existing homeserver.yaml files, the seed guide's
// snippets and an admin's Synapse knowledge carry over. Each key carries a description (`doc`)
// that the reference prints; keys whose value is a filesystem path are marked with `filePath()`
// so the loader can resolve them relative to the file that set them.

import { z } from 'zod';
import { decodeBase64Lenient } from '../core/base64.js';
import { DEFAULT_IP_RANGE_BLACKLIST, parseCidr } from '../core/ip-ranges.js';
import { isValidServerName } from '../core/identifiers.js';
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '../core/room-versions.js';

export interface KeyMeta {
  description: string;
  /** Relative values are resolved against the directory of the config file that set them. */
  isPath?: boolean;
  /** An example value for the reference, when the default does not show the format. */
  example?: string;
}

// Metadata lives in our own registry so the reference generator and the loader read the same
// descriptions without relying on zod internals.
export const keyMeta = z.registry<KeyMeta>();

function doc<T extends z.ZodType>(schema: T, description: string, example?: string): T {
  keyMeta.add(schema, example === undefined ? { description } : { description, example });
  return schema;
}

function filePath(description: string, example?: string) {
  const schema = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a non-empty file path' }).optional();
  keyMeta.add(schema, { description, isPath: true, ...(example === undefined ? {} : { example }) });
  return schema;
}

/**
 * A UNIX file mode. YAML 1.2 reads `0660` as decimal 660; our YAML loader restores YAML 1.1's
 * leading-zero octal (as Synapse's PyYAML reads it), and strings are read as octal digits, so
 * `0660`, `"0660"`, `"660"` and `0o660` all mean rw-rw----.
 */
export const fileMode = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parseFileMode(value);
  if (parsed === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an octal file mode such as 0660, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return parsed;
});

export function parseFileMode(value: number | string): number | undefined {
  if (typeof value === 'number') {
    // A number here came from YAML already converted (0660 → 432). Anything above 0o777 was
    // written without its leading zero (660), which is ambiguous: refuse rather than guess.
    return Number.isInteger(value) && value >= 0 && value <= 0o777 ? value : undefined;
  }
  const match = /^(?:0o|0)?([0-7]{1,3})$/i.exec(value.trim());
  return match ? parseInt(match[1]!, 8) : undefined;
}

/** Synapse's size strings: an integer of bytes, or a number with a K/M/G/T suffix (binary). */
export const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parseByteSize(value);
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 50M or 1048576, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed;
});

export function parseByteSize(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = /^\s*(\d+)\s*([KMGT]?)B?\s*$/i.exec(value);
  if (!match) return undefined;
  const power = ' KMGT'.indexOf((match[2] || ' ').toUpperCase());
  return Number(match[1]) * 1024 ** power;
}

/** Synapse's durations: milliseconds as a number, or a number with a unit (`ms s m h d w y`). */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as 1h or 3600000, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed;
});

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = /^\s*(\d+)\s*(ms|[smhdwy])?\s*$/.exec(value);
  return match ? Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']! : undefined;
}

const port = z.number({ error: 'expected a port number' }).int().min(0).max(65535);

/**
 * A rate limit as Synapse writes it: a bucket of `burst_count` actions that refills at
 * `per_second`. Either field may be left out and keeps its default.
 */
function rateLimit(description: string, defaults: { per_second: number; burst_count: number }) {
  return doc(
    z
      .object({
        per_second: doc(z.number().min(0).default(defaults.per_second), 'Actions per second allowed in the long run.'),
        burst_count: doc(z.number().min(0).default(defaults.burst_count), 'Actions allowed at once before the limit applies.'),
      })
      .default(defaults),
    description,
  );
}

export const RESOURCE_NAMES = [
  'client',
  'federation',
  'keys',
  'media',
  'replication',
  'health',
  'metrics',
  'openid',
  'static',
  // Myelin's built-in router (the Workers issue): forwards each request to a worker that serves it.
  'router',
] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];

const resource = z.object({
  names: doc(
    z
      .array(z.enum(RESOURCE_NAMES))
      .min(1)
      // As in Synapse, `federation` also serves the server key API (`/_matrix/key/*`), which the
      // `keys` resource serves alone.
      .transform((names) => (names.includes('federation') && !names.includes('keys') ? [...names, 'keys' as const] : names)),
    'The resource groups this listener serves: client, federation (which includes keys), keys (`/_matrix/key/*`), media, ' +
      'replication, health, metrics, openid, static.',
  ),
  compress: doc(z.boolean().default(false), 'Compress responses (accepted for compatibility; responses are not compressed yet).'),
});

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** A request may take up to 5 minutes in all (Node's `requestTimeout`), its headers no longer. */
export const MAX_HEADER_TIMEOUT_MS = 300_000;

export const listenerSchema = z
  .object({
    port: doc(port.optional(), 'TCP port. Give either `port` or `path`.', '8008'),
    bind_addresses: doc(z.array(z.string()).optional(), "Addresses to bind the TCP port on. Default `['::', '0.0.0.0']`.", "['127.0.0.1']"),
    bind_address: doc(z.string().optional(), 'Legacy single-address form of `bind_addresses`.'),
    path: filePath('UNIX socket path. Give either `port` or `path`. Its directory must exist.', '/run/matrix-synapse/replication.sock'),
    mode: doc(fileMode.optional(), 'File mode of the UNIX socket (octal). Default 0666.', '0660'),
    type: doc(z.enum(['http', 'metrics']), 'Listener type: `http` or `metrics`.'),
    tls: doc(
      z.boolean().default(false),
      'Serve HTTPS on this listener, with the certificate and key of `tls_certificate_path` and `tls_private_key_path` ' +
        '(re-read on SIGHUP). Not on listeners with the `replication` or `router` resource.',
    ),
    x_forwarded: doc(
      z.boolean().default(false),
      'Trust `X-Forwarded-For` from the reverse proxy in front of this listener for client IPs.',
    ),
    resources: doc(z.array(resource).default([]), 'The resource groups to serve, as a list of `{names, compress}`.'),
    // Connection limits (Myelin keys: Synapse leaves these to Twisted and its reverse proxy).
    max_connections: doc(
      z.number().int().min(1).default(DEFAULT_MAX_CONNECTIONS),
      `Most connections this listener keeps open at once. When it is full, a new connection makes room by closing the ` +
        `connection that has been waiting longest without sending a request, or else the one idle longest between ` +
        `requests; when every connection is in the middle of a request, the new one is answered 503 and closed. ` +
        `All listeners of a process together also stay below its open-file limit (see \`soft_file_limit\`).`,
    ),
    header_timeout: doc(
      duration.default(DEFAULT_HEADER_TIMEOUT_MS),
      'How long a connection may take to send a complete set of request headers, counted from when it connects ' +
        '(or from the first byte of a later request on a kept-alive connection); it is closed after that. At most 5m. Default 30s.',
      '30s',
    ),
    keep_alive_timeout: doc(
      duration.default(DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
      'How long a kept-alive connection may stay idle between requests before it is closed. Keep it above the idle ' +
        "timeout of a reverse proxy's upstream connections (nginx: 60s), so that the proxy closes first. Default 65s.",
      '65s',
    ),
  })
  .superRefine((listener, ctx) => {
    if (listener.path === undefined && listener.port === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a listener needs either `port` or `path`', path: ['port'] });
    }
    if (listener.path !== undefined && listener.port !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'a listener takes `port` or `path`, not both', path: ['path'] });
    }
    if (listener.path !== undefined && (listener.bind_addresses !== undefined || listener.bind_address !== undefined)) {
      ctx.addIssue({ code: 'custom', message: '`bind_addresses` only applies to TCP listeners', path: ['bind_addresses'] });
    }
    if (listener.header_timeout < 1 || listener.header_timeout > MAX_HEADER_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration between 1ms and 5m', path: ['header_timeout'] });
    }
    if (listener.keep_alive_timeout < 1) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration of at least 1ms', path: ['keep_alive_timeout'] });
    }
    if (listener.mode !== undefined && listener.path === undefined) {
      ctx.addIssue({ code: 'custom', message: '`mode` only applies to UNIX socket listeners (`path`)', path: ['mode'] });
    }
  });
type ParsedListener = z.output<typeof listenerSchema>;
type ConnectionLimitKey = 'max_connections' | 'header_timeout' | 'keep_alive_timeout';
/**
 * A listener's settings. Code that builds one by hand (tests, helpers) may leave the connection
 * limits out; the listener then applies the defaults above.
 */
export type ListenerConfig = Omit<ParsedListener, ConnectionLimitKey> & Partial<Pick<ParsedListener, ConnectionLimitKey>>;

const databaseArgs = z.object({
  database: doc(
    z.string().optional(),
    'SQLite: the database file (relative paths are resolved against the config file). PostgreSQL: the database name.',
    '/var/lib/myelin/homeserver.db',
  ),
  dbname: doc(z.string().optional(), 'PostgreSQL: the database name (alias of `database`).'),
  user: doc(z.string().optional(), 'PostgreSQL: the role to connect as.'),
  password: doc(z.string().optional(), 'PostgreSQL: the password.'),
  host: doc(z.string().optional(), 'PostgreSQL: a host name, or a directory holding the server socket (e.g. `/run/postgresql`).'),
  port: doc(port.optional(), 'PostgreSQL: the TCP port (default 5432).'),
  cp_min: doc(z.number().int().min(0).optional(), 'PostgreSQL: minimum pool size (default 5).'),
  cp_max: doc(z.number().int().min(1).optional(), 'PostgreSQL: maximum pool size (default 10).'),
});

const database = z
  .object({
    name: doc(z.enum(['sqlite3', 'psycopg2', 'postgres']), '`sqlite3` (embedded, the default) or `psycopg2`/`postgres` for PostgreSQL.'),
    args: doc(databaseArgs.default({}), 'Connection arguments (see below).'),
  })
  .superRefine((db, ctx) => {
    if (db.name === 'sqlite3' && !db.args.database) {
      ctx.addIssue({ code: 'custom', message: 'SQLite needs `args.database`, the database file', path: ['args', 'database'] });
    }
  });

const redis = z.object({
  enabled: doc(z.boolean().default(false), 'Use Redis as the replication bus between main and workers.'),
  path: filePath('UNIX socket of the Redis server. Takes precedence over `host`/`port`.', '/run/redis/redis-server.sock'),
  host: doc(z.string().default('localhost'), 'Redis host, when no `path` is given.'),
  port: doc(port.default(6379), 'Redis port, when no `path` is given.'),
  password: doc(z.string().optional(), 'Redis password.'),
  dbid: doc(z.number().int().min(0).optional(), 'Redis database number.'),
});

const instanceLocation = z
  .object({
    host: doc(z.string().optional(), 'Host of the instance’s replication listener.'),
    port: doc(port.optional(), 'Port of the instance’s replication listener.'),
    path: filePath('UNIX socket of the instance’s replication listener.'),
    tls: doc(
      z.boolean().default(false),
      'Use TLS to reach it. Not supported: `true` is refused; reach instances over UNIX sockets or a private network.',
    ),
  })
  .superRefine((entry, ctx) => {
    if (entry.tls) {
      ctx.addIssue({
        code: 'custom',
        message: 'TLS between Myelin processes is not supported; reach the instance over a UNIX socket (`path`) or a private network',
        path: ['tls'],
      });
    }
    const hasTcp = entry.host !== undefined || entry.port !== undefined;
    if (entry.path === undefined && (entry.host === undefined || entry.port === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'an instance_map entry needs `path`, or `host` and `port`' });
    }
    if (entry.path !== undefined && hasTcp) {
      ctx.addIssue({ code: 'custom', message: 'an instance_map entry takes `path` or `host`+`port`, not both' });
    }
  });
export type InstanceLocation = z.output<typeof instanceLocation>;

const writerList = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === 'string' ? [v] : v));

const streamWriters = z.object({
  events: doc(writerList.optional(), 'Instances that persist events, sharded by room.'),
  typing: doc(writerList.optional(), 'The instance that handles typing notifications (exactly one).'),
  to_device: doc(writerList.optional(), 'The instance that writes to-device messages (exactly one).'),
  account_data: doc(writerList.optional(), 'The instance that writes account data and tags (exactly one).'),
  presence: doc(writerList.optional(), 'The instance that writes presence (exactly one).'),
  push_rules: doc(writerList.optional(), 'The instance that writes push rules (exactly one).'),
  receipts: doc(writerList.optional(), 'Instances that write receipts (one or more).'),
  device_lists: doc(writerList.optional(), 'Instances that write device lists (one or more).'),
});

// ---- federation ----

/** A configured ed25519 public key: base64 (padded or not) of 32 bytes. */
function isPublicKeyBase64(value: string): boolean {
  try {
    return decodeBase64Lenient(value).length === 32;
  } catch {
    return false;
  }
}

const ED25519_KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;

/** A list of IP addresses or CIDR ranges; every entry that is not one is reported. */
function ipRangeList(description: string, defaults?: readonly string[]) {
  const list = z.array(z.string()).superRefine((entries, ctx) => {
    entries.forEach((entry, i) => {
      if (!parseCidr(entry))
        ctx.addIssue({
          code: 'custom',
          message: `expected an IP address or CIDR range such as 10.0.0.0/8, got ${JSON.stringify(entry)}`,
          path: [i],
        });
    });
  });
  return doc(defaults === undefined ? list.optional() : list.default([...defaults]), description);
}

const trustedKeyServer = z.object({
  server_name: doc(z.string().refine(isValidServerName, { error: 'expected a server name' }), 'The key server (notary).'),
  verify_keys: doc(
    z
      .record(z.string(), z.string())
      .superRefine((keys, ctx) => {
        for (const [keyId, key] of Object.entries(keys)) {
          if (!ED25519_KEY_ID.test(keyId))
            ctx.addIssue({ code: 'custom', message: `expected a key id such as ed25519:abc, got ${JSON.stringify(keyId)}`, path: [keyId] });
          else if (!isPublicKeyBase64(key))
            ctx.addIssue({ code: 'custom', message: 'expected an unpadded base64 ed25519 public key', path: [keyId] });
        }
      })
      .optional(),
    "The key server's own public keys (key id → base64): every answer must be signed by one of them. Without them, " +
      'answers are trusted on the strength of TLS alone.',
    "{'ed25519:auto': Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw}",
  ),
  accept_keys_insecurely: doc(
    z.boolean().default(false),
    'Accept answers of this key server without `verify_keys` even with `federation_verify_certificates: false`.',
  ),
});
export type TrustedKeyServerConfig = z.output<typeof trustedKeyServer>;

export const DEFAULT_TRUSTED_KEY_SERVERS: readonly TrustedKeyServerConfig[] = [
  { server_name: 'matrix.org', accept_keys_insecurely: false },
];

const oldSigningKey = z.object({
  key: doc(z.string().refine(isPublicKeyBase64, { error: 'expected an unpadded base64 ed25519 public key' }), 'The public key.'),
  expired_ts: doc(z.number().int().min(0), 'When the key stopped being used (ms since the epoch).'),
});

export const TLS_VERSIONS = ['1', '1.1', '1.2', '1.3'] as const;
export type TlsVersionSetting = (typeof TLS_VERSIONS)[number];

const tlsVersion = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const text = String(value);
  if (!(TLS_VERSIONS as readonly string[]).includes(text)) {
    ctx.addIssue({ code: 'custom', message: `expected one of 1, 1.1, 1.2, 1.3, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return text as TlsVersionSetting;
});

/** A file path inside a list (resolved like `filePath` keys). */
function listedFilePath() {
  const schema = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a non-empty file path' });
  keyMeta.add(schema, { description: 'A file path.', isPath: true });
  return schema;
}

/** Synapse's `rc_federation`: per-origin limits on inbound federation requests. */
const federationRateLimit = z.object({
  window_size: doc(duration.default(1000), 'The window over which requests are counted (ms, or a duration).'),
  sleep_limit: doc(z.number().int().min(0).default(10), 'Requests in the window beyond which each further request is delayed.'),
  sleep_delay: doc(duration.default(500), 'How long such a request is delayed (ms, or a duration).'),
  reject_limit: doc(
    z.number().int().min(0).default(50),
    'Requests waiting (delayed or queued) beyond which further ones are refused with 429.',
  ),
  concurrent: doc(z.number().int().min(1).default(3), 'Requests of one server processed at once; the rest wait in turn.'),
});
export type FederationRateLimitConfig = z.output<typeof federationRateLimit>;

export const configSchema = z
  .object({
    server_name: doc(
      z.string({ error: 'expected the server name as a string' }).min(1),
      'The domain part of user ids and room aliases on this server. It cannot change later.',
      'example.com',
    ),
    public_baseurl: doc(z.url().optional(), 'The public URL clients use to reach this server.', 'https://matrix.example.com/'),
    serve_server_wellknown: doc(
      z.boolean().default(false),
      'Serve `/.well-known/matrix/server` (on `client` listeners), delegating federation to the host of `public_baseurl` ' +
        '(its port, else 443), or without `public_baseurl` to port 443 of the server name.',
    ),
    tls_certificate_path: filePath(
      'The PEM certificate (with its chain) that listeners with `tls: true` serve. Re-read on SIGHUP.',
      '/etc/myelin/tls/fullchain.pem',
    ),
    tls_private_key_path: filePath('The PEM private key of `tls_certificate_path`. Re-read on SIGHUP.', '/etc/myelin/tls/privkey.pem'),
    federation_verify_certificates: doc(
      z.boolean().default(true),
      'Check the TLS certificates of other servers (and of their `.well-known`). Turn off only for tests.',
    ),
    federation_certificate_verification_whitelist: doc(
      z
        .array(z.string())
        .nullable()
        .default([])
        .superRefine((entries, ctx) => {
          (entries ?? []).forEach((entry, i) => {
            if (!/^[\x21-\x7e]+$/.test(entry))
              ctx.addIssue({ code: 'custom', message: 'expected an ASCII domain name or glob (IDNA names are not allowed)', path: [i] });
          });
        }),
      'Domains (globs with `*` and `?`) whose certificates are not checked, e.g. `*.example.test`.',
    ),
    federation_client_minimum_tls_version: doc(
      tlsVersion.default('1'),
      'The oldest TLS version used to reach other servers: 1, 1.1, 1.2 or 1.3 (the system OpenSSL may refuse old versions anyway).',
    ),
    federation_custom_ca_list: doc(
      z.array(listedFilePath()).min(1, { error: 'expected at least one CA certificate file' }).optional(),
      "PEM files of the certificate authorities other servers' certificates must chain to, instead of the system's.",
      '[/etc/myelin/federation-ca.pem]',
    ),
    federation_domain_whitelist: doc(
      z
        .array(z.string().refine(isValidServerName, { error: 'expected a server name' }))
        .nullable()
        .optional(),
      'When set, the only servers this one federates with (both ways); requests from others are refused with 403.',
      '[example.com, example.org]',
    ),
    ip_range_blacklist: ipRangeList(
      'Addresses (IP or CIDR) outbound federation never connects to, whatever DNS, SRV or `.well-known` say. ' +
        '0.0.0.0 and :: are refused even when left out of it.',
      DEFAULT_IP_RANGE_BLACKLIST,
    ),
    federation_ip_range_blacklist: ipRangeList(
      "Synapse's older name: when set, it replaces `ip_range_blacklist` for federation, and `ip_range_whitelist` does not apply to " +
        'federation.',
    ),
    ip_range_whitelist: ipRangeList('Addresses (IP or CIDR) allowed even though `ip_range_blacklist` lists them.', []),
    trusted_key_servers: doc(
      z.array(trustedKeyServer).optional(),
      "Notary servers asked for other servers' signing keys before asking the servers themselves, each " +
        '`{server_name, verify_keys, accept_keys_insecurely}`. Default `[{server_name: matrix.org}]`; `[]` asks the servers directly only.',
      '[{server_name: matrix.org, verify_keys: {"ed25519:auto": Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw}}]',
    ),
    suppress_key_server_warning: doc(z.boolean().default(false), 'Do not warn at start-up that matrix.org is the trusted key server.'),
    key_refresh_interval: doc(
      duration.default(86_400_000),
      'How long the signing keys this server publishes are valid (`valid_until_ts`); the answer is renewed half-way.',
      '1d',
    ),
    old_signing_keys: doc(
      z.record(z.string().regex(ED25519_KEY_ID, { error: 'expected a key id such as ed25519:abc' }), oldSigningKey).default({}),
      'Signing keys this server used before: published as `old_verify_keys` so others can still check old events.',
      "{'ed25519:old': {key: <base64 public key>, expired_ts: 1700000000000}}",
    ),
    allow_public_rooms_over_federation: doc(
      z.boolean().default(false),
      "Let other servers read this server's public room directory (federation `/publicRooms`; otherwise 403, as Synapse).",
    ),
    presence: doc(
      z
        .object({
          enabled: doc(
            z.union([z.boolean(), z.literal('untracked')]).default(true),
            'Presence is always on: `false` and `untracked` are refused (not supported yet).',
          ),
        })
        .default({ enabled: true }),
      'Presence settings.',
    ),
    rc_federation: doc(
      federationRateLimit.default({ window_size: 1000, sleep_limit: 10, sleep_delay: 500, reject_limit: 50, concurrent: 3 }),
      'Limits on the requests of each other server (applied by the inbound federation API).',
    ),
    federation: doc(
      z
        .object({
          destination_min_retry_interval: doc(
            duration.default(5_000),
            'How long the federation sender waits before trying an unreachable server again the first time. ' +
              "Synapse's default is 10 minutes; Myelin's is 5 s, so a server that was briefly down gets its missed events within seconds.",
            '5s',
          ),
          destination_retry_multiplier: doc(z.number().min(1).default(2), 'By how much the wait grows after each further failure.'),
          destination_max_retry_interval: doc(duration.default(7 * 86_400_000), 'The longest wait between two attempts.', '1w'),
        })
        .default({
          destination_min_retry_interval: 5_000,
          destination_retry_multiplier: 2,
          destination_max_retry_interval: 7 * 86_400_000,
        }),
      "The federation sender's retry timings (a server that contacts us is retried at once whatever they say).",
    ),
    federation_rr_transactions_per_room_per_second: doc(
      z.number().min(0).default(50),
      'How many read-receipt transactions per room and second are sent to other servers (used by the federation sender).',
    ),
    rc_key_requests: rateLimit(
      'Room key requests (`m.room_key_request` to-device messages) received over federation, ' +
        'per requesting device of the sender; dropped beyond it.',
      {
        per_second: 20,
        burst_count: 100,
      },
    ),
    listeners: doc(z.array(listenerSchema).default([]), 'HTTP listeners of the main process (see "Listeners" below).'),
    database: doc(database.optional(), 'The database. Default: SQLite `homeserver.db` beside the config file.'),
    signing_key_path: filePath('The ed25519 signing key file (`ed25519 <version> <base64 seed>`).', '/etc/myelin/example.com.signing.key'),
    registration_shared_secret: doc(
      z.string().min(1).optional(),
      'Secret that allows registering users through the admin API (`myelin register-user`).',
    ),
    registration_shared_secret_path: filePath('A file holding the registration shared secret.'),
    default_room_version: doc(
      z
        .union([z.string(), z.number()])
        .transform((value) => String(value))
        .refine((id) => ROOM_VERSIONS.has(id), {
          error: `expected a room version this server supports (${[...ROOM_VERSIONS.keys()].join(', ')})`,
        })
        .default(DEFAULT_ROOM_VERSION.id),
      'The version of rooms created without `room_version`, also announced in `/capabilities`. ' +
        'Servers older than a room version cannot join its rooms (Synapse 1.67 knows versions 1 to 10).',
      '10',
    ),
    enable_registration: doc(z.boolean().default(false), 'Allow anyone to register an account.'),
    enable_registration_without_verification: doc(
      z.boolean().default(false),
      'Allow open registration without email or captcha verification (needed together with `enable_registration`).',
    ),
    rc_message: rateLimit('Messages a user may send (per user; server admins are exempt).', { per_second: 0.2, burst_count: 10 }),
    rc_registration: rateLimit('Registrations per client IP address.', { per_second: 0.17, burst_count: 3 }),
    rc_login: doc(
      z
        .object({
          address: rateLimit('Login attempts per client IP address.', { per_second: 0.17, burst_count: 3 }),
          account: rateLimit('Successful logins per account.', { per_second: 0.17, burst_count: 3 }),
          failed_attempts: rateLimit('Failed logins (and failed re-authentications) per account.', { per_second: 0.17, burst_count: 3 }),
        })
        .default({
          address: { per_second: 0.17, burst_count: 3 },
          account: { per_second: 0.17, burst_count: 3 },
          failed_attempts: { per_second: 0.17, burst_count: 3 },
        }),
      'Login rate limits: `address`, `account` and `failed_attempts`.',
    ),
    rc_joins: doc(
      z
        .object({
          local: rateLimit('Joins per user to rooms this server is already in.', { per_second: 0.1, burst_count: 10 }),
          remote: rateLimit('Joins per user to rooms that need another server (federation).', { per_second: 0.01, burst_count: 10 }),
        })
        .default({ local: { per_second: 0.1, burst_count: 10 }, remote: { per_second: 0.01, burst_count: 10 } }),
      'Room join rate limits: `local` and `remote`.',
    ),
    soft_file_limit: doc(
      z.number().int().min(0).default(0),
      'The soft limit on open files (connections, database files) each process sets at start-up, as Synapse: 0 sets ' +
        'it to the hard limit; a larger value is capped at the hard limit. A limit below 4096 is warned about.',
    ),
    media_store_path: filePath('Directory where uploaded media is stored. Default `media_store` beside the config.'),
    max_upload_size: doc(byteSize.default(50 * 1024 * 1024), 'Largest media upload accepted.', '50M'),
    turn_uris: doc(
      z.array(z.string()).default([]),
      'TURN server URIs handed to clients for VoIP calls (`GET /voip/turnServer`).',
      '["turn:turn.example.com:3478?transport=udp"]',
    ),
    turn_shared_secret: doc(
      z.string().min(1).optional(),
      "The TURN server's shared secret (coturn `static-auth-secret`): clients get short-lived credentials derived from it.",
    ),
    turn_user_lifetime: doc(duration.default(3_600_000), 'How long TURN credentials stay valid.', '1h'),
    turn_allow_guests: doc(z.boolean().default(true), 'Whether guests may get TURN credentials.'),
    redis: doc(redis.default({ enabled: false, host: 'localhost', port: 6379 }), 'Redis replication bus (worker mode).'),
    instance_map: doc(
      z.record(z.string(), instanceLocation).default({}),
      'Where to reach each instance’s replication listener: `main` and every stream writer.',
      '{main: {path: /run/matrix-synapse/replication.sock}}',
    ),
    stream_writers: doc(streamWriters.default({}), 'Which instances write which streams (worker mode).'),
    worker_replication_secret: doc(z.string().min(1).optional(), 'Shared secret that authenticates replication HTTP requests.'),
    worker_replication_secret_path: filePath('A file holding `worker_replication_secret`.'),
    federation_sender_instances: doc(z.array(z.string()).optional(), 'Workers that send outgoing federation traffic.'),
    pusher_instances: doc(z.array(z.string()).optional(), 'Workers that send push notifications.'),
    run_background_tasks_on: doc(z.string().default('main'), 'The instance that runs background jobs.'),
    initial_sync_instances: doc(
      z.array(z.string()).optional(),
      'Generic workers that take initial syncs (`/sync` without `since`), so they cannot slow down ongoing syncs. Default: the ' +
        'workers that serve `/sync`.',
      '[generic3]',
    ),
    media_instance_running_background_jobs: doc(z.string().optional(), 'The media worker that runs media clean-up jobs.'),
    log_config: filePath('A logging config (YAML): `root.level` and a file handler’s `filename` are honoured.'),

    worker_app: doc(
      z.string().optional(),
      'Worker files only: `generic_worker` or `media_repository` (`synapse.app.` prefix and legacy names accepted).',
    ),
    worker_name: doc(z.string().min(1).optional(), 'Worker files only: the unique instance name.'),
    worker_listeners: doc(z.array(listenerSchema).default([]), 'Worker files only: the worker’s HTTP listeners.'),
    worker_log_config: filePath('Worker files only: the worker’s logging config.'),
  })
  .superRefine((config, ctx) => {
    checkTlsListeners(config, ctx);
    checkTrustedKeyServers(config, ctx);
    if (config.presence.enabled !== true) {
      ctx.addIssue({
        code: 'custom',
        message: `turning presence off is not supported yet (${JSON.stringify(config.presence.enabled)}); remove the key or set it to true`,
        path: ['presence', 'enabled'],
      });
    }
    if (config.registration_shared_secret !== undefined && config.registration_shared_secret_path !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'give `registration_shared_secret` or `registration_shared_secret_path`, not both',
        path: ['registration_shared_secret_path'],
      });
    }
    if (config.worker_replication_secret !== undefined && config.worker_replication_secret_path !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'give `worker_replication_secret` or `worker_replication_secret_path`, not both',
        path: ['worker_replication_secret_path'],
      });
    }
  });

/**
 * A listener that asks for TLS must serve it (Synapse: "tls_certificate_path must be specified if
 * TLS-enabled listeners are configured"); where it cannot, start-up stops here.
 */
function checkTlsListeners(config: ValidatedConfig, ctx: z.RefinementCtx): void {
  for (const key of ['listeners', 'worker_listeners'] as const) {
    config[key].forEach((listener, i) => {
      if (!listener.tls) return;
      if (listener.path !== undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'TLS is served on TCP listeners (`port`) only, not on UNIX sockets',
          path: [key, i, 'tls'],
        });
      }
      const names = listener.resources.flatMap((r) => r.names);
      for (const name of ['replication', 'router'] as const) {
        if (names.includes(name)) {
          ctx.addIssue({
            code: 'custom',
            message:
              name === 'replication'
                ? 'TLS is not supported on the replication listener (other processes reach it over plain HTTP); use a UNIX socket'
                : 'TLS is not supported on a router listener; terminate TLS in a reverse proxy in front of it',
            path: [key, i, 'tls'],
          });
        }
      }
      for (const pathKey of ['tls_certificate_path', 'tls_private_key_path'] as const) {
        if (config[pathKey] === undefined) {
          ctx.addIssue({ code: 'custom', message: `a listener with \`tls: true\` needs \`${pathKey}\``, path: [key, i, 'tls'] });
        }
      }
    });
  }
}

const RELYING_ON_OLD_MATRIX_ORG_KEY =
  'with federation_verify_certificates off, trusting matrix.org on its old key ed25519:auto alone is refused ' +
  '(as in Synapse); turn certificate checks on, or set accept_keys_insecurely on this key server';

/**
 * Synapse's rule: with certificate checks off, a key server's answers must be signed by keys
 * configured for it, unless the admin says `accept_keys_insecurely`.
 */
function checkTrustedKeyServers(config: ValidatedConfig, ctx: z.RefinementCtx): void {
  if (config.federation_verify_certificates) return;
  (config.trusted_key_servers ?? DEFAULT_TRUSTED_KEY_SERVERS).forEach((server, i) => {
    if (server.accept_keys_insecurely) return;
    const keyIds = Object.keys(server.verify_keys ?? {});
    if (keyIds.length === 0) {
      ctx.addIssue({
        code: 'custom',
        message:
          'with federation_verify_certificates off, a key server without verify_keys would be trusted without any check; ' +
          'give its verify_keys, or set accept_keys_insecurely if you are sure',
        path: ['trusted_key_servers', i],
      });
    } else if (server.server_name === 'matrix.org' && keyIds.includes('ed25519:auto')) {
      ctx.addIssue({ code: 'custom', message: RELYING_ON_OLD_MATRIX_ORG_KEY, path: ['trusted_key_servers', i] });
    }
  });
}

export type ValidatedConfig = z.output<typeof configSchema>;
