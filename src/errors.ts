// Matrix errors: every client-facing failure is `{errcode, error}` with an HTTP status
// (S:content/client-server-api/_index.md §Standard error response). Handlers throw these; the
// HTTP layer turns them into responses. Anything else that escapes a handler is a bug and is
// answered with 500 M_UNKNOWN.

export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    /** Extra top-level fields of the error body, e.g. `retry_after_ms`. */
    readonly extra: Readonly<Record<string, unknown>> = {},
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

export const Errors = {
  badJson: (message = 'Content must be a JSON object') => new MatrixError(400, 'M_BAD_JSON', message),
  notJson: (message = 'Content not JSON') => new MatrixError(400, 'M_NOT_JSON', message),
  /** JSON from a request that `parseJsonInput` refused: not JSON at all, or JSON we do not take. */
  jsonInput: (err: { readonly problem: string; readonly message: string }) =>
    err.problem === 'syntax' ? new MatrixError(400, 'M_NOT_JSON', 'Content not JSON') : new MatrixError(400, 'M_BAD_JSON', err.message),
  missingParam: (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message),
  invalidParam: (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message),
  /** 413 for a body; 414 for a request URI, 431 for headers. */
  tooLarge: (message = 'Request too large', status: 413 | 414 | 431 = 413) => new MatrixError(status, 'M_TOO_LARGE', message),
  /** A request the HTTP parser could not read (the spec has no errcode for it). */
  malformedRequest: (message = 'Malformed HTTP request') => new MatrixError(400, 'M_UNKNOWN', message),
  requestTimeout: () => new MatrixError(408, 'M_UNKNOWN', 'The request took too long to arrive'),
  forbidden: (message: string) => new MatrixError(403, 'M_FORBIDDEN', message),
  /** A federation request without a valid `X-Matrix` signature (spec: server-server API §Request Authentication). */
  unauthorized: (message: string) => new MatrixError(401, 'M_UNAUTHORIZED', message),
  /** Every connection slot of a listener is taken by a request in flight. */
  serverBusy: () =>
    new MatrixError(503, 'M_UNKNOWN', 'The server has too many open connections; try again shortly', {}, { 'Retry-After': '1' }),
  notFound: (message = 'Not found') => new MatrixError(404, 'M_NOT_FOUND', message),
  unrecognized: (status: 404 | 405 | 400, message = 'Unrecognized request') =>
    new MatrixError(status, 'M_UNRECOGNIZED', message),
  missingToken: () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token'),
  unknownToken: (message = 'Unrecognised access token') =>
    new MatrixError(401, 'M_UNKNOWN_TOKEN', message, { soft_logout: false }),
  unknown: (message = 'Internal server error') => new MatrixError(500, 'M_UNKNOWN', message),
  /**
   * A new room's id is already a room's: in v12 two identical create events (same creator,
   * content and timestamp) give one room id; before v12 a random id can repeat. Room creation
   * builds another create event and tries again (see RoomCreationHandler); clients never see it.
   */
  roomIdTaken: (roomId: string) => new MatrixError(409, 'M_ROOM_IN_USE', `Room id ${roomId} is already in use`),
  /**
   * A dependency (the database) cannot serve for a while: 503 with `Retry-After` (RFC 9110
   * §15.6.4), so clients repeat the request later instead of taking it as failed for good. The
   * errcode is M_UNKNOWN, the spec's catch-all (client-server API, §Standard error response).
   */
  unavailable: (message = 'Service temporarily unavailable', retryAfterSeconds = 1) =>
    new MatrixError(503, 'M_UNKNOWN', message, {}, { 'Retry-After': String(retryAfterSeconds) }),
} as const;
