// Authenticating inbound federation requests (spec: server-server API §Request Authentication):
// the `X-Matrix` Authorization header must name us as its destination (or none, for older
// servers) and carry a valid signature by a current key of its origin over the request as
// received. Missing or bad → 401 `M_UNAUTHORIZED`; an origin outside `federation_domain_whitelist`
// → 403 `M_FORBIDDEN` (checked before any key is fetched for it, as Synapse does).
//
// Routes declared `auth: 'server'` call `authenticate` with the raw request target (`req.url`:
// the signature covers the target exactly as sent, percent-encoding and all) and the parsed body.

import type { JsonValue } from '../core/json.js';
import { readXMatrixHeader, verifyXMatrixRequest } from '../core/x-matrix.js';
import { Errors } from '../errors.js';
import type { Keyring } from './keyring.js';
import { isFederationAllowed, type FederationSettings } from './settings.js';

export interface InboundFederationRequest {
  /** The HTTP method as received. */
  readonly method: string;
  /** The raw request target as received: path and query, undecoded. */
  readonly uri: string;
  /** The parsed JSON body, `undefined` when the request has none. */
  readonly content?: JsonValue;
  /** The `Authorization` header. */
  readonly authorization: string | undefined;
}

export interface AuthenticatedServer {
  /** The server that signed the request. */
  readonly origin: string;
}

export interface RequestAuthOptions {
  readonly serverName: string;
  readonly keyring: Pick<Keyring, 'getVerifyKey'>;
  readonly settings: Pick<FederationSettings, 'domainWhitelist'>;
  readonly now?: () => number;
  /** Called with each authenticated origin (e.g. to reset its retry backoff: it is up). */
  readonly onAuthenticated?: (origin: string) => void;
}

export class FederationRequestAuthenticator {
  private readonly now: () => number;

  constructor(private readonly options: RequestAuthOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The authenticated origin; throws a `MatrixError` (401 or 403) otherwise. */
  async authenticate(request: InboundFederationRequest): Promise<AuthenticatedServer> {
    const { serverName, keyring, settings } = this.options;
    const header = readXMatrixHeader(request.authorization, serverName);
    if (!header.ok) throw Errors.unauthorized(header.failure.message);
    const { origin, keyId } = header.credentials;
    if (!isFederationAllowed(settings, origin)) throw Errors.forbidden(`Federation denied with ${origin}`);
    const now = this.now();
    // Request signatures need a current key valid now (old keys never sign requests).
    const key = await keyring.getVerifyKey(origin, keyId, now);
    const verified = verifyXMatrixRequest(
      header.credentials,
      { method: request.method, uri: request.uri, ...(request.content === undefined ? {} : { content: request.content }) },
      serverName,
      key,
      now,
    );
    if (!verified.ok) throw Errors.unauthorized(verified.failure.message);
    this.options.onAuthenticated?.(origin);
    return { origin };
  }
}
