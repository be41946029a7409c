// Opens TLS connections to other servers, and nowhere else.
//
// Every hostname is resolved here and every address is checked against the IP policy
// (`ip_range_blacklist` / `ip_range_whitelist`) before a connection is attempted, so a server
// name, `.well-known` or SRV record pointing at an internal address never reaches it: otherwise
// anyone could make this server send requests into its own network. Certificates are checked
// against the name the discovery plan gives (spec: server-server API §TLS), unless
// `federation_verify_certificates` is off or the name is in
// `federation_certificate_verification_whitelist`.

import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { FederationEndpoint } from '../core/server-names.js';
import type { FederationDns } from './dns.js';
import { FederationUnreachableError } from './errors.js';
import { isCertificateCheckSkipped, type FederationSettings } from './settings.js';

export type ConnectorSettings = Pick<
  FederationSettings,
  'ipPolicy' | 'verifyCertificates' | 'certificateVerificationWhitelist' | 'minimumTlsVersion' | 'customCa'
>;

/** Where to connect and what the certificate must say (a `FederationTarget` of the planner). */
export interface ConnectTarget {
  readonly endpoints: readonly FederationEndpoint[];
  /** SNI; `undefined` when the certificate is for an IP address (SNI cannot carry one). */
  readonly tlsServerName: string | undefined;
  /** The name (hostname or IP) the certificate must be valid for. */
  readonly certificateName: string;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export class FederationConnector {
  constructor(
    private readonly settings: ConnectorSettings,
    private readonly dns: FederationDns,
    private readonly connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
  ) {}

  /**
   * A TLS connection to the first endpoint and address that accepts one. Errors are
   * `FederationUnreachableError`s naming `destination`: `blocked` when every address was refused
   * by the IP policy, else the last failure's reason.
   */
  async connect(destination: string, target: ConnectTarget, signal?: AbortSignal): Promise<TLSSocket> {
    const failures: FederationUnreachableError[] = [];
    for (const endpoint of target.endpoints) {
      let addresses: string[];
      if (endpoint.isIpLiteral) {
        addresses = [endpoint.host];
      } else {
        try {
          addresses = await this.dns.addresses(endpoint.host);
        } catch (err) {
          failures.push(new FederationUnreachableError(destination, 'dns', (err as Error).message, { cause: err }));
          continue;
        }
      }
      const allowed = addresses.filter((address) => this.settings.ipPolicy.isAllowed(address));
      if (allowed.length === 0) {
        failures.push(
          new FederationUnreachableError(
            destination,
            'blocked',
            `${endpoint.host} resolves only to addresses federation may not reach (ip_range_blacklist): ${addresses.join(', ')}`,
          ),
        );
        continue;
      }
      for (const address of allowed) {
        if (signal?.aborted) throw new FederationUnreachableError(destination, 'timeout', `connecting to ${destination} timed out`);
        try {
          return await this.connectTo(destination, address, endpoint.port, target, signal);
        } catch (err) {
          failures.push(err as FederationUnreachableError);
        }
      }
    }
    throw (
      failures.find((f) => f.reason !== 'blocked') ??
      failures[0] ??
      new FederationUnreachableError(destination, 'dns', `no address for ${destination}`)
    );
  }

  private connectTo(
    destination: string,
    address: string,
    port: number,
    target: ConnectTarget,
    signal: AbortSignal | undefined,
  ): Promise<TLSSocket> {
    const skipCheck = isCertificateCheckSkipped(this.settings, target.certificateName);
    const where = `${address.includes(':') ? `[${address}]` : address}:${port}`;
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: address,
        port,
        ...(target.tlsServerName === undefined ? {} : { servername: target.tlsServerName }),
        rejectUnauthorized: !skipCheck,
        // The certificate is for the server name (or delegated name), never the resolved address.
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          skipCheck ? undefined : checkServerIdentity(target.certificateName, cert),
        minVersion: this.settings.minimumTlsVersion,
        ...(this.settings.customCa ? { ca: [...this.settings.customCa] } : {}),
        ALPNProtocols: ['http/1.1'],
      });
      const fail = (reason: 'connect' | 'tls' | 'timeout', message: string, cause?: unknown) => {
        cleanup();
        socket.destroy();
        reject(new FederationUnreachableError(destination, reason, message, { cause }));
      };
      const timer = setTimeout(() => fail('timeout', `connecting to ${destination} at ${where} timed out`), this.connectTimeoutMs);
      const onAbort = () => fail('timeout', `connecting to ${destination} at ${where} timed out`);
      let tcpUp = false;
      socket.once('connect', () => {
        tcpUp = true;
      });
      const onError = (err: NodeJS.ErrnoException) => {
        // Errors before the TCP connection is up are connection errors; later ones are the handshake's.
        fail(
          tcpUp ? 'tls' : 'connect',
          `${tcpUp ? 'TLS with' : 'cannot connect to'} ${destination} at ${where}: ${err.code ?? err.message}`,
          err,
        );
      };
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        cleanup();
        // Whoever takes the socket listens for its errors; until then none may go unhandled.
        socket.on('error', () => undefined);
        resolve(socket);
      });
    });
  }
}

/** The connect target for `https://hostname:port/...` URLs (`.well-known`, redirects). */
export function urlTarget(hostname: string, port: number, isIpLiteral: boolean): ConnectTarget {
  return {
    endpoints: [{ host: hostname, port, isIpLiteral }],
    tlsServerName: isIpLiteral ? undefined : hostname,
    certificateName: hostname,
  };
}
