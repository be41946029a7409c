// What can go wrong talking to another server, classified the way the callers need it: the
// federation sender backs off on `unreachable` and 5xx, gives up on `denied`; key fetching moves
// on to the next source.

import type { JsonValue } from '../core/json.js';

export type FederationFailureKind =
  /** We do not federate with this destination (`federation_domain_whitelist`, invalid name). */
  | 'denied'
  /** No answer: DNS, every address blocked by the IP policy, connection, TLS, timeout. */
  | 'unreachable'
  /** The server answered with an HTTP error. */
  | 'http'
  /** The server answered 2xx with something that is not the JSON expected (or too much of it). */
  | 'invalid-response';

export type UnreachableReason = 'dns' | 'blocked' | 'connect' | 'tls' | 'timeout' | 'connection-lost';

export abstract class FederationRequestError extends Error {
  abstract readonly kind: FederationFailureKind;
  constructor(
    readonly destination: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class FederationDeniedError extends FederationRequestError {
  readonly kind = 'denied' as const;
  constructor(destination: string, message = `federation with ${destination} is not allowed (federation_domain_whitelist)`) {
    super(destination, message);
    this.name = 'FederationDeniedError';
  }
}

export class FederationUnreachableError extends FederationRequestError {
  readonly kind = 'unreachable' as const;
  constructor(
    destination: string,
    readonly reason: UnreachableReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(destination, message, options);
    this.name = 'FederationUnreachableError';
  }
}

export class FederationHttpError extends FederationRequestError {
  readonly kind = 'http' as const;
  constructor(
    destination: string,
    readonly status: number,
    /** The Matrix error code of the answer, when it was a Matrix error. */
    readonly errcode: string | undefined,
    /** Its `error` text, when it had one. */
    readonly errorText: string | undefined,
    /** The parsed body when it was JSON. */
    readonly body: JsonValue | undefined,
  ) {
    super(destination, `${destination} answered ${status}${errcode ? ` ${errcode}` : ''}${errorText ? `: ${errorText}` : ''}`);
    this.name = 'FederationHttpError';
  }
}

export class FederationInvalidResponseError extends FederationRequestError {
  readonly kind = 'invalid-response' as const;
  constructor(destination: string, message: string, options?: { cause?: unknown }) {
    super(destination, message, options);
    this.name = 'FederationInvalidResponseError';
  }
}
