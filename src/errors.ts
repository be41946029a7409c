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
  missingParam: (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message),
  invalidParam: (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message),
  tooLarge: (message = 'Request too large') => new MatrixError(413, 'M_TOO_LARGE', message),
  forbidden: (message: string) => new MatrixError(403, 'M_FORBIDDEN', message),
  notFound: (message = 'Not found') => new MatrixError(404, 'M_NOT_FOUND', message),
  unrecognized: (status: 404 | 405 | 400, message = 'Unrecognized request') =>
    new MatrixError(status, 'M_UNRECOGNIZED', message),
  missingToken: () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token'),
  unknownToken: (message = 'Unrecognised access token') =>
    new MatrixError(401, 'M_UNKNOWN_TOKEN', message, { soft_logout: false }),
  unknown: (message = 'Internal server error') => new MatrixError(500, 'M_UNKNOWN', message),
  /**
   * A dependency (the database) cannot serve for a while: 503 with `Retry-After` (RFC 9110
   * §15.6.4), so clients repeat the request later instead of taking it as failed for good. The
   * errcode is M_UNKNOWN, the spec's catch-all (client-server API, §Standard error response).
   */
  unavailable: (message = 'Service temporarily unavailable', retryAfterSeconds = 1) =>
    new MatrixError(503, 'M_UNKNOWN', message, {}, { 'Retry-After': String(retryAfterSeconds) }),
} as const;
