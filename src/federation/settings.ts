// The federation part of the configuration, turned into the values the federation code works
// with: parsed IP policy, compiled certificate whitelist globs, the trusted key servers, our old
// keys. The keys are Synapse's (see src/config/schema.ts); this is the one place that reads them.

import { readFileSync } from 'node:fs';
import type { SecureVersion } from 'node:tls';
import { ConfigError } from '../config/load.js';
import {
  DEFAULT_TRUSTED_KEY_SERVERS,
  type FederationRateLimitConfig,
  type TlsVersionSetting,
  type ValidatedConfig,
} from '../config/schema.js';
import { IpAccessPolicy } from '../core/ip-ranges.js';
import type { OldVerifyKey } from '../core/server-keys.js';

/** The config keys federation reads. */
export type FederationConfigKeys = Pick<
  ValidatedConfig,
  | 'server_name'
  | 'federation_verify_certificates'
  | 'federation_certificate_verification_whitelist'
  | 'federation_client_minimum_tls_version'
  | 'federation_custom_ca_list'
  | 'federation_domain_whitelist'
  | 'ip_range_blacklist'
  | 'federation_ip_range_blacklist'
  | 'ip_range_whitelist'
  | 'trusted_key_servers'
  | 'suppress_key_server_warning'
  | 'key_refresh_interval'
  | 'old_signing_keys'
  | 'allow_public_rooms_over_federation'
  | 'rc_federation'
  | 'federation_rr_transactions_per_room_per_second'
  | 'rc_key_requests'
>;

export interface TrustedKeyServer {
  readonly serverName: string;
  /**
   * The notary's own keys (key id → base64) that must sign its answers; `undefined` when none are
   * configured, and answers are then trusted on the strength of TLS alone (as Synapse).
   */
  readonly verifyKeys: Readonly<Record<string, string>> | undefined;
}

export interface FederationSettings {
  readonly serverName: string;
  readonly verifyCertificates: boolean;
  /** Hostnames (globs compiled) whose certificates are not checked. */
  readonly certificateVerificationWhitelist: readonly RegExp[];
  readonly minimumTlsVersion: SecureVersion;
  /** PEM CA certificates replacing the system's trust store, when configured. */
  readonly customCa: readonly Buffer[] | undefined;
  /** The only servers we federate with, when configured. */
  readonly domainWhitelist: ReadonlySet<string> | undefined;
  /** Which resolved addresses outbound federation may connect to. */
  readonly ipPolicy: IpAccessPolicy;
  readonly trustedKeyServers: readonly TrustedKeyServer[];
  readonly keyRefreshIntervalMs: number;
  readonly oldSigningKeys: readonly OldVerifyKey[];
  readonly allowPublicRoomsOverFederation: boolean;
  readonly rateLimit: FederationRateLimitConfig;
  readonly readReceiptTransactionsPerRoomPerSecond: number;
  readonly keyRequestRateLimit: { readonly per_second: number; readonly burst_count: number };
}

const TLS_VERSION_NAMES: Readonly<Record<TlsVersionSetting, SecureVersion>> = {
  '1': 'TLSv1',
  '1.1': 'TLSv1.1',
  '1.2': 'TLSv1.2',
  '1.3': 'TLSv1.3',
};

/**
 * A whitelist glob as Synapse compiles it: `*` any run of characters (dots included), `?` one
 * character, the whole name, case-insensitive.
 */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('')
    .map((c) => (c === '*' ? '.*?' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'i');
}

/** Whether certificate checks are skipped for `hostname`. */
export function isCertificateCheckSkipped(
  settings: Pick<FederationSettings, 'verifyCertificates' | 'certificateVerificationWhitelist'>,
  hostname: string,
): boolean {
  return !settings.verifyCertificates || settings.certificateVerificationWhitelist.some((re) => re.test(hostname));
}

/** Whether we federate with `serverName` at all (`federation_domain_whitelist`). */
export function isFederationAllowed(settings: Pick<FederationSettings, 'domainWhitelist'>, serverName: string): boolean {
  return settings.domainWhitelist === undefined || settings.domainWhitelist.has(serverName);
}

export function federationSettingsOf(config: FederationConfigKeys): FederationSettings {
  // Synapse: `federation_ip_range_blacklist`, the older name, replaces the blacklist for
  // federation, and the whitelist then does not apply to federation.
  const ipPolicy =
    config.federation_ip_range_blacklist !== undefined
      ? IpAccessPolicy.fromConfig({ blacklist: config.federation_ip_range_blacklist, whitelist: [] })
      : IpAccessPolicy.fromConfig({ blacklist: config.ip_range_blacklist, whitelist: config.ip_range_whitelist });
  return {
    serverName: config.server_name,
    verifyCertificates: config.federation_verify_certificates,
    certificateVerificationWhitelist: (config.federation_certificate_verification_whitelist ?? []).map(globToRegExp),
    minimumTlsVersion: TLS_VERSION_NAMES[config.federation_client_minimum_tls_version],
    customCa: config.federation_custom_ca_list === undefined ? undefined : readCaFiles(config.federation_custom_ca_list),
    domainWhitelist: config.federation_domain_whitelist ? new Set(config.federation_domain_whitelist) : undefined,
    ipPolicy,
    trustedKeyServers: (config.trusted_key_servers ?? DEFAULT_TRUSTED_KEY_SERVERS).map((s) => ({
      serverName: s.server_name,
      verifyKeys: s.verify_keys,
    })),
    keyRefreshIntervalMs: config.key_refresh_interval,
    oldSigningKeys: Object.entries(config.old_signing_keys).map(([keyId, old]) => ({
      keyId,
      // Published unpadded, whatever padding the admin copied.
      publicKey: old.key.replace(/=+$/, ''),
      expiredTs: old.expired_ts,
    })),
    allowPublicRoomsOverFederation: config.allow_public_rooms_over_federation,
    rateLimit: config.rc_federation,
    readReceiptTransactionsPerRoomPerSecond: config.federation_rr_transactions_per_room_per_second,
    keyRequestRateLimit: config.rc_key_requests,
  };
}

function readCaFiles(paths: readonly string[]): Buffer[] {
  const problems: string[] = [];
  const certificates: Buffer[] = [];
  for (const path of paths) {
    try {
      const pem = readFileSync(path);
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) problems.push(`federation_custom_ca_list: ${path} holds no PEM certificate`);
      else certificates.push(pem);
    } catch (err) {
      problems.push(`federation_custom_ca_list: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return certificates;
}

const MATRIX_ORG = 'matrix.org';

/**
 * The warnings Synapse logs at start-up about the trusted key server (synapse/config/key.py), in
 * substance: one when none is configured and matrix.org is used by default, one when matrix.org is
 * configured. `suppress_key_server_warning` silences both.
 */
export function keyServerWarnings(config: Pick<ValidatedConfig, 'trusted_key_servers' | 'suppress_key_server_warning'>): string[] {
  if (config.suppress_key_server_warning) return [];
  if (config.trusted_key_servers === undefined) {
    return [
      'This server has no trusted key server configured (trusted_key_servers) and falls back to the default, ' +
        "'matrix.org', to fetch other servers' signing keys. Trusted key servers should be long-lived and stable, which " +
        'makes matrix.org a good choice for many admins, but some may wish to choose another. To silence this warning, set ' +
        "'trusted_key_servers' to the key servers you want and 'suppress_key_server_warning' to true.",
    ];
  }
  if (config.trusted_key_servers.some((s) => s.server_name === MATRIX_ORG)) {
    return [
      "This server uses 'matrix.org' as a trusted key server (trusted_key_servers). 'matrix.org' is a good choice since it " +
        'is long-lived, stable and trusted, but some admins may wish to use another server for this purpose. To keep ' +
        "'matrix.org' and silence this warning, set 'suppress_key_server_warning' to true.",
    ];
  }
  return [];
}
