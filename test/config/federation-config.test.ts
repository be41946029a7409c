// The federation configuration keys (Synapse's names and defaults): what they default to, what
// they turn into, and what is refused at start-up.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pino from 'pino';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { DEFAULT_IP_RANGE_BLACKLIST } from '../../src/core/ip-ranges.js';
import { encodePublicKey, generateSigningKey } from '../../src/core/signing.js';
import { createFederationServices } from '../../src/federation/index.js';
import { federationSettingsOf, globToRegExp, isCertificateCheckSkipped, keyServerWarnings } from '../../src/federation/settings.js';
import { serverWellKnownDelegation } from '../../src/federation/well-known.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { startTestHomeserver } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

function load(config: Record<string, unknown>): Config {
  const dir = tempDir();
  writeFiles(dir, { 'homeserver.yaml': YAML.stringify({ server_name: 'example.com', ...config }) });
  return loadConfig([join(dir, 'homeserver.yaml')], { warn: (w) => assert.fail(`unexpected warning: ${w}`) });
}

function problems(config: Record<string, unknown>): string {
  try {
    load(config);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.join('\n');
  }
  assert.fail('expected the config to be refused');
}

describe('federation configuration', () => {
  test("Synapse's defaults", () => {
    const config = load({});
    assert.equal(config.federation_verify_certificates, true);
    assert.equal(config.federation_client_minimum_tls_version, '1');
    assert.deepEqual(config.ip_range_blacklist, [...DEFAULT_IP_RANGE_BLACKLIST]);
    assert.deepEqual(config.ip_range_whitelist, []);
    assert.equal(config.key_refresh_interval, 86_400_000);
    assert.equal(config.allow_public_rooms_over_federation, false);
    assert.deepEqual(config.rc_federation, { window_size: 1000, sleep_limit: 10, sleep_delay: 500, reject_limit: 50, concurrent: 3 });
    assert.equal(config.federation_rr_transactions_per_room_per_second, 50);
    assert.deepEqual(config.rc_key_requests, { per_second: 20, burst_count: 100 });
    assert.deepEqual(config.presence, { enabled: true });
    const settings = federationSettingsOf(config);
    assert.deepEqual(settings.trustedKeyServers, [{ serverName: 'matrix.org', verifyKeys: undefined }]);
    assert.equal(settings.domainWhitelist, undefined);
    assert.equal(settings.minimumTlsVersion, 'TLSv1');
    assert.equal(settings.ipPolicy.isAllowed('10.1.2.3'), false);
    assert.equal(settings.ipPolicy.isAllowed('::ffff:127.0.0.1'), false);
    assert.equal(settings.ipPolicy.isAllowed('93.184.216.34'), true);
  });

  test('the values turn into what federation uses', () => {
    const old = generateSigningKey('old');
    const config = load({
      federation_client_minimum_tls_version: 1.2,
      federation_certificate_verification_whitelist: ['*.example.test', 'exact.test'],
      federation_domain_whitelist: ['a.example', 'b.example:8448'],
      ip_range_whitelist: ['10.1.0.0/16', '192.168.1.1'],
      key_refresh_interval: '6h',
      // Padded, as copied from some tools: published unpadded.
      old_signing_keys: { 'ed25519:old': { key: `${encodePublicKey(old)}=`, expired_ts: 1_600_000_000_000 } },
      rc_federation: { window_size: '2s', sleep_delay: 250, concurrent: 5 },
      trusted_key_servers: [{ server_name: 'keys.example', verify_keys: { 'ed25519:a': encodePublicKey(generateSigningKey('a')) } }],
    });
    const settings = federationSettingsOf(config);
    assert.equal(settings.minimumTlsVersion, 'TLSv1.2');
    assert.equal(settings.keyRefreshIntervalMs, 6 * 3_600_000);
    assert.deepEqual(settings.oldSigningKeys, [{ keyId: 'ed25519:old', publicKey: encodePublicKey(old), expiredTs: 1_600_000_000_000 }]);
    assert.deepEqual(settings.rateLimit, { window_size: 2000, sleep_limit: 10, sleep_delay: 250, reject_limit: 50, concurrent: 5 });
    assert.deepEqual([...settings.domainWhitelist!], ['a.example', 'b.example:8448']);
    assert.equal(settings.trustedKeyServers[0]!.serverName, 'keys.example');
    assert.equal(settings.ipPolicy.isAllowed('10.1.2.3'), true);
    assert.equal(settings.ipPolicy.isAllowed('10.2.0.1'), false);
    assert.equal(settings.ipPolicy.isAllowed('192.168.1.1'), true);
    assert.equal(settings.ipPolicy.isAllowed('192.168.1.2'), false);
    // 0.0.0.0 and :: are refused even with an empty blacklist.
    const emptied = federationSettingsOf(load({ ip_range_blacklist: [] })).ipPolicy;
    assert.deepEqual([emptied.isAllowed('0.0.0.0'), emptied.isAllowed('::'), emptied.isAllowed('10.0.0.1')], [false, false, true]);
    for (const [name, skipped] of [
      ['a.example.test', true],
      ['A.B.EXAMPLE.TEST', true],
      ['example.test', false],
      ['exact.test', true],
      ['notexact.test', false],
    ] as const) {
      assert.equal(isCertificateCheckSkipped(settings, name), skipped, name);
    }
    assert.equal(globToRegExp('a?c.[x]').test('abc.[x]'), true);
  });

  test('federation_ip_range_blacklist (the older name) replaces the blacklist for federation, without the whitelist (as Synapse)', () => {
    const settings = federationSettingsOf(load({ federation_ip_range_blacklist: ['10.0.0.0/8'], ip_range_whitelist: ['10.1.0.0/16'] }));
    assert.equal(settings.ipPolicy.isAllowed('10.1.2.3'), false);
    assert.equal(settings.ipPolicy.isAllowed('127.0.0.1'), true);
    assert.equal(settings.ipPolicy.isAllowed('0.0.0.0'), false);
  });

  test('refused: bad ranges, TLS versions, key servers, old keys, presence off', () => {
    assert.match(
      problems({ ip_range_blacklist: ['10.0.0.0/8', 'intranet'] }),
      /ip_range_blacklist\[1\]: expected an IP address or CIDR range/,
    );
    assert.match(problems({ ip_range_whitelist: ['10.0.0.0/33'] }), /ip_range_whitelist\[0\]/);
    assert.match(
      problems({ federation_client_minimum_tls_version: 1.4 }),
      /federation_client_minimum_tls_version: expected one of 1, 1.1, 1.2, 1.3/,
    );
    assert.match(
      problems({ trusted_key_servers: [{ server_name: 'keys.example', verify_keys: { 'ed25519:a': 'short' } }] }),
      /trusted_key_servers\[0\]\.verify_keys\.ed25519:a/,
    );
    assert.match(
      problems({ trusted_key_servers: [{ server_name: 'keys.example', verify_keys: { 'rsa:a': encodePublicKey(generateSigningKey()) } }] }),
      /expected a key id/,
    );
    assert.match(problems({ old_signing_keys: { 'ed25519:x': { key: 'nope', expired_ts: 1 } } }), /old_signing_keys\.ed25519:x\.key/);
    assert.match(problems({ presence: { enabled: false } }), /presence\.enabled: turning presence off is not supported yet/);
    assert.match(problems({ federation_custom_ca_list: [] }), /federation_custom_ca_list: expected at least one ca certificate file/i);
    assert.match(problems({ federation_domain_whitelist: ['not a server'] }), /federation_domain_whitelist\[0\]: expected a server name/);
  });

  test("Synapse's rule for key servers without certificate checks: their keys must be configured, unless accept_keys_insecurely", () => {
    assert.match(
      problems({ federation_verify_certificates: false }),
      /trusted_key_servers\[0\]: with federation_verify_certificates off, a key server without verify_keys/,
    );
    assert.match(
      problems({
        federation_verify_certificates: false,
        trusted_key_servers: [{ server_name: 'matrix.org', verify_keys: { 'ed25519:auto': encodePublicKey(generateSigningKey()) } }],
      }),
      /trusting matrix\.org on its old key ed25519:auto alone is refused/,
    );
    load({ federation_verify_certificates: false, trusted_key_servers: [{ server_name: 'keys.example', accept_keys_insecurely: true }] });
    load({ federation_verify_certificates: false, trusted_key_servers: [] });
  });

  test('federation_custom_ca_list naming a file that is missing stops start-up', async () => {
    const missing = join(tempDir(), 'ca.pem');
    const config = load({ federation_custom_ca_list: [missing] });
    const isCaError = (err: unknown) =>
      err instanceof ConfigError && /federation_custom_ca_list: cannot read .*ca\.pem: ENOENT/.test(err.problems[0]!);
    assert.throws(() => federationSettingsOf(config), isCaError);
    await assert.rejects(startTestHomeserver({ config: { federation_custom_ca_list: [missing] } }), isCaError);
  });

  test('the key server warnings Synapse logs, unless suppress_key_server_warning', () => {
    assert.match(keyServerWarnings(load({}))[0]!, /no trusted key server configured .* 'matrix\.org'/);
    assert.match(
      keyServerWarnings(load({ trusted_key_servers: [{ server_name: 'matrix.org' }] }))[0]!,
      /uses 'matrix\.org' as a trusted key server/,
    );
    assert.deepEqual(keyServerWarnings(load({ trusted_key_servers: [{ server_name: 'keys.example' }] })), []);
    assert.deepEqual(keyServerWarnings(load({ trusted_key_servers: [] })), []);
    assert.deepEqual(keyServerWarnings(load({ suppress_key_server_warning: true })), []);

    // And it is logged when the federation services start.
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const db = new SqliteDatabase(':memory:');
    const federation = createFederationServices({ config: load({}), db, signingKey: generateSigningKey(), log });
    void federation.close();
    void db.close();
    assert.equal(lines.length, 1);
    assert.match(JSON.parse(lines[0]!).msg, /falls back to the default, 'matrix\.org'/);
  });

  test('/.well-known/matrix/server (serve_server_wellknown): the host of public_baseurl (port or 443), else the server name', async () => {
    assert.equal(
      serverWellKnownDelegation({ server_name: 'example.com', public_baseurl: 'https://matrix.example.com/' }),
      'matrix.example.com:443',
    );
    assert.equal(
      serverWellKnownDelegation({ server_name: 'example.com', public_baseurl: 'https://matrix.example.com:8443/x/' }),
      'matrix.example.com:8443',
    );
    assert.equal(serverWellKnownDelegation({ server_name: 'example.com', public_baseurl: 'https://[2001:db8::1]/' }), '[2001:db8::1]:443');
    assert.equal(serverWellKnownDelegation({ server_name: 'example.com' }), 'example.com:443');
    assert.equal(serverWellKnownDelegation({ server_name: 'example.com:8000' }), 'example.com:8000');

    const hs = await startTestHomeserver({
      serverName: 'example.com',
      config: { serve_server_wellknown: true, public_baseurl: 'https://matrix.example.com/' },
    });
    try {
      const answer = await request({ baseUrl: hs.baseUrl }, 'GET', '/.well-known/matrix/server');
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.json, { 'm.server': 'matrix.example.com:443' });
    } finally {
      await hs.stop();
    }
    const off = await startTestHomeserver();
    try {
      assert.equal((await request({ baseUrl: off.baseUrl }, 'GET', '/.well-known/matrix/server')).status, 404);
    } finally {
      await off.stop();
    }
  });
});
