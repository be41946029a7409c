// The certificate and private key that TLS listeners serve (`tls_certificate_path`,
// `tls_private_key_path`, as Synapse). They are read at start-up and again on SIGHUP, so a renewed
// certificate (e.g. from an ACME client) is taken without restarting or dropping connections.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  readonly certificatePath: string;
  readonly privateKeyPath: string;
}

/** The PEM texts of a certificate (chain) and its key, checked to belong together. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export class TlsFilesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsFilesError';
  }
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsFilesError(`cannot read the TLS ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads both files and checks that OpenSSL accepts them together (PEM that parses, a key that
 * matches the certificate), so a bad file is reported by name instead of as a failed handshake.
 */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = readPem(files.certificatePath, 'certificate');
  const key = readPem(files.privateKeyPath, 'private key');
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFilesError(
      `the TLS certificate ${files.certificatePath} and private key ${files.privateKeyPath} cannot be used: ${(err as Error).message}`,
    );
  }
  return { cert, key };
}

/** What `reloadTlsOnHangup` needs of a running listener. */
export interface ReloadableListener {
  readonly addresses: readonly string[];
  reloadTls?(): void;
}

interface HangupLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Re-reads the certificate and key of every TLS listener on SIGHUP (as Synapse does). A file that
 * cannot be read or does not fit leaves the listener serving the previous certificate, with an
 * error in the log. Returns a function that removes the handler. Installed only when a TLS
 * listener exists, so a process without one keeps SIGHUP's usual meaning.
 */
export function reloadTlsOnHangup(listeners: readonly ReloadableListener[], files: TlsFiles, log: HangupLog): () => void {
  const reloadable = listeners.filter((l) => l.reloadTls !== undefined);
  if (reloadable.length === 0) return () => undefined;
  const onHangup = () => {
    for (const listener of reloadable) {
      try {
        listener.reloadTls!();
        log.info(
          { listener: listener.addresses, certificate: files.certificatePath },
          `reloaded the TLS certificate ${files.certificatePath} on SIGHUP`,
        );
      } catch (err) {
        log.error(
          { listener: listener.addresses, err: (err as Error).message },
          'could not reload the TLS certificate on SIGHUP; still serving the previous one',
        );
      }
    }
  };
  process.on('SIGHUP', onHangup);
  return () => process.off('SIGHUP', onHangup);
}
