// The federation transport of one process: settings, discovery, the outbound client, our keys,
// the keyring (remote keys, notary), inbound request authentication and the inbound rate limiter.
// Every process builds its own (main and workers alike: any of them may serve the key API or
// send requests).

import type { Logger } from 'pino';
import type { ValidatedConfig } from '../config/schema.js';
import type { SigningKey } from '../core/signing.js';
import type { Database } from '../storage/database.js';
import { ServerKeysStore } from '../storage/server-keys-store.js';
import { FederationClient } from './client.js';
import { FederationConnector } from './connector.js';
import { ServerDiscovery } from './discovery.js';
import { createDns, type DnsOptions } from './dns.js';
import { Keyring } from './keyring.js';
import { OwnServerKeys } from './own-keys.js';
import { FederationRateLimiter } from './rate-limit.js';
import { FederationRequestAuthenticator } from './request-auth.js';
import { federationSettingsOf, keyServerWarnings, type FederationConfigKeys, type FederationSettings } from './settings.js';

export interface FederationServices {
  readonly settings: FederationSettings;
  /** Our `/_matrix/key/v2/server` answer and our keys. */
  readonly ownKeys: OwnServerKeys;
  readonly discovery: ServerDiscovery;
  /** Signed requests to other servers. */
  readonly client: FederationClient;
  /** Other servers' keys; the notary. */
  readonly keyring: Keyring;
  /** `X-Matrix` checks for inbound requests (for routes with server authentication). */
  readonly requestAuth: FederationRequestAuthenticator;
  /** `rc_federation`, for inbound requests once authenticated. */
  readonly rateLimiter: FederationRateLimiter;
  close(): Promise<void>;
}

export interface FederationServicesOptions {
  readonly config: FederationConfigKeys & Pick<ValidatedConfig, 'suppress_key_server_warning'>;
  readonly db: Database;
  readonly signingKey: SigningKey;
  readonly log: Logger;
  readonly now?: () => number;
  /** Tests only: DNS servers to ask (a test's own), instead of the system's. */
  readonly dns?: DnsOptions;
  /** Tests only: the port `.well-known/matrix/server` is fetched on, instead of 443. */
  readonly wellKnownPort?: number;
  /** Called with each origin whose request was authenticated (it is up). */
  readonly onRemoteServerUp?: (origin: string) => void;
}

export function createFederationServices(options: FederationServicesOptions): FederationServices {
  const { config, db, signingKey, log } = options;
  const now = options.now ?? Date.now;
  const settings = federationSettingsOf(config);
  for (const warning of keyServerWarnings(config)) log.warn(warning);
  const dns = createDns(options.dns);
  const connector = new FederationConnector(settings, dns);
  const discovery = new ServerDiscovery({
    connector,
    dns,
    log,
    now,
    ...(options.wellKnownPort === undefined ? {} : { wellKnownPort: options.wellKnownPort }),
  });
  const client = new FederationClient({ settings, signingKey, discovery, connector, log });
  const ownKeys = new OwnServerKeys({
    serverName: settings.serverName,
    signingKeys: [signingKey],
    oldKeys: settings.oldSigningKeys,
    keyRefreshIntervalMs: settings.keyRefreshIntervalMs,
    now,
  });
  const keyring = new Keyring({ ownKeys, store: new ServerKeysStore(db), client, settings, log, now });
  const requestAuth = new FederationRequestAuthenticator({
    serverName: settings.serverName,
    keyring,
    settings,
    now,
    ...(options.onRemoteServerUp ? { onAuthenticated: options.onRemoteServerUp } : {}),
  });
  const rateLimiter = new FederationRateLimiter(settings.rateLimit, { now });
  return {
    settings,
    ownKeys,
    discovery,
    client,
    keyring,
    requestAuth,
    rateLimiter,
    close: () => client.close(),
  };
}
