// Certificates for tests, made with the real `openssl` command: a certificate authority, and
// certificates for given DNS names and IP addresses, self-signed or signed by that authority.
// Keys are P-256 (fast to make).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface TestCertificate {
  readonly certPath: string;
  readonly keyPath: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 fingerprint, as `X509Certificate.fingerprint256` and `getPeerCertificate().fingerprint256` give it. */
  readonly fingerprint256: string;
}

export interface TestAuthority extends TestCertificate {
  readonly dir: string;
}

let serial = 1;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function read(certPath: string, keyPath: string): TestCertificate {
  const certPem = readFileSync(certPath, 'utf8');
  return { certPath, keyPath, certPem, keyPem: readFileSync(keyPath, 'utf8'), fingerprint256: new X509Certificate(certPem).fingerprint256 };
}

/** A certificate authority (self-signed, `CA:true`). */
export function makeAuthority(name = 'Myelin Test CA'): TestAuthority {
  const dir = tempDir('myelin-ca-');
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.pem');
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:true',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { ...read(certPath, keyPath), dir };
}

/**
 * A server certificate for `dnsNames` and `ips`: self-signed, or signed by `authority`. Written to
 * `dir` (a new temporary directory by default) as `<name>.pem` and `<name>.key`.
 */
export function makeCertificate(
  options: { dnsNames?: string[]; ips?: string[]; authority?: TestAuthority; dir?: string; name?: string } = {},
): TestCertificate {
  const dir = options.dir ?? tempDir('myelin-cert-');
  const name = options.name ?? 'server';
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  const alt = [...(options.dnsNames ?? []).map((n) => `DNS:${n}`), ...(options.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
  const cn = options.dnsNames?.[0] ?? options.ips?.[0] ?? 'myelin-test';
  if (!options.authority) {
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      ...(alt ? ['-addext', `subjectAltName=${alt}`] : []),
    ]);
    return read(certPath, keyPath);
  }
  const csrPath = join(dir, `${name}.csr`);
  const extPath = join(dir, `${name}.ext`);
  openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    csrPath,
    '-subj',
    `/CN=${cn}`,
  ]);
  writeFileSync(
    extPath,
    `basicConstraints=CA:false\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n${alt ? `subjectAltName=${alt}\n` : ''}`,
  );
  openssl([
    'x509',
    '-req',
    '-in',
    csrPath,
    '-CA',
    options.authority.certPath,
    '-CAkey',
    options.authority.keyPath,
    '-set_serial',
    String(Date.now() * 100 + serial++),
    '-days',
    '2',
    '-out',
    certPath,
    '-extfile',
    extPath,
  ]);
  return read(certPath, keyPath);
}
