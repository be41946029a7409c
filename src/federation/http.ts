// Small pieces shared by the outbound HTTP code: an undici connector that opens connections
// through `FederationConnector` (so the IP policy and certificate rules always apply), and reading
// an answer's body with a size bound.

import type { buildConnector } from 'undici';
import type { ConnectTarget, FederationConnector } from './connector.js';

/** An undici `connect` function that ignores undici's own host and connects to `target()`. */
export function undiciConnect(
  connector: FederationConnector,
  destination: string,
  target: () => Promise<ConnectTarget>,
): buildConnector.connector {
  return (_options, callback) => {
    target()
      .then((t) => connector.connect(destination, t))
      .then(
        (socket) => callback(null, socket),
        (err: Error) => callback(err, null),
      );
  };
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Reads a body to its end, or throws `BodyTooLargeError` as soon as it passes `maxBytes` (the rest
 * is not read: the stream is destroyed, and with it the connection).
 */
export async function readBounded(body: AsyncIterable<Uint8Array> & { destroy(err?: Error): unknown }, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw new BodyTooLargeError(maxBytes);
    }
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return Buffer.concat(chunks, size);
}
