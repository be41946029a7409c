// User-interactive authentication (S:content/client-server-api/_index.md §User-Interactive
// Authentication API; `Syn:synapse/handlers/auth.py` `check_ui_auth`,
// `validate_user_via_ui_auth`).
//
// An endpoint offers flows (lists of stages). The client's first request gets a 401 naming them
// and a session; each retry carries `auth` with a stage, until one flow is complete. Sessions live
// in the database so a follow-up may reach any worker. A session is bound to the method and path
// that started it, and remembers the request body so that a follow-up carrying only `auth` means
// the same request. Secrets in the body (passwords) are never stored: callers keep a hash in the
// session's server-side data instead.

import { randomBytes } from 'node:crypto';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors, MatrixError } from '../../errors.js';
import type { UiAuthSessionRow, UsersStore } from '../../storage/users-store.js';
import { AuthFailure, type PasswordAuthenticator } from './password-auth.js';

export const LOGIN_TYPE_DUMMY = 'm.login.dummy';
export const LOGIN_TYPE_PASSWORD = 'm.login.password';

/** Synapse forgets sessions after 48 hours. */
export const UIA_SESSION_LIFETIME_MS = 48 * 60 * 60 * 1000;
const PURGE_INTERVAL_MS = 60 * 60 * 1000;

export type UiaFlows = readonly (readonly string[])[];

export interface UiaRequest {
  readonly method: string;
  /** The request path: a session belongs to one operation. */
  readonly uri: string;
  /** The request body, `auth` included. */
  readonly body: JsonObject;
  readonly flows: UiaFlows;
  /**
   * For re-authenticating a logged-in user: the user the access token belongs to. The session is
   * tied to them, and the identity the stages prove must be theirs.
   */
  readonly requesterUserId?: string;
  /** Body fields never written to the session (passwords). */
  readonly secretFields?: readonly string[];
}

export interface UiaResult {
  readonly sessionId: string;
  /** The request's parameters: this body, or the stored one if this request carried only `auth`. */
  readonly params: JsonObject;
  /** The completed stages and what each proved (a password stage: the user id). */
  readonly completed: Readonly<Record<string, unknown>>;
}

/** The 401 that asks for (more) authentication. Not an error unless a stage just failed. */
export class UiaIncompleteError extends MatrixError {
  private readonly stageFailed: boolean;

  constructor(
    readonly sessionId: string,
    private readonly body: JsonObject,
    failure?: MatrixError,
  ) {
    super(401, failure?.errcode ?? 'M_UNAUTHORIZED', failure?.message ?? 'Additional authentication is required');
    this.stageFailed = failure !== undefined;
  }

  // Only a failed stage adds errcode/error: clients (matrix-js-sdk) show any errcode to the user
  // as the reason a stage failed.
  override toJSON(): Record<string, unknown> {
    return this.stageFailed ? { errcode: this.errcode, error: this.message, ...this.body } : { ...this.body };
  }
}

export class UserInteractiveAuth {
  private lastPurgeMs = 0;

  constructor(
    private readonly users: UsersStore,
    // Counts failed attempts per claimed user (rc_login.failed_attempts), as for /login.
    private readonly passwords: PasswordAuthenticator,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs one step of user-interactive auth for a request. Resolves when a flow is complete; throws
   * `UiaIncompleteError` (401) while one is not, 400 for a malformed `auth` or unknown session, 403
   * when the session belongs to another operation or user, 429 after too many failed attempts.
   */
  async check(request: UiaRequest): Promise<UiaResult> {
    const { auth, params: given } = this.splitBody(request);

    const sessionId = optionalSessionId(auth);
    let session: UiAuthSessionRow;
    let params = given;
    if (sessionId === undefined) {
      session = await this.createSession(request, given);
    } else {
      session = await this.existingSession(sessionId, request);
      // A follow-up without parameters continues the stored request; new parameters replace it.
      if (Object.keys(given).length === 0) params = JSON.parse(session.body_json) as JsonObject;
      else if (JSON.stringify(given) !== session.body_json)
        await this.users.setUiAuthSessionBody(session.session_id, JSON.stringify(given));
    }

    const completed = JSON.parse(session.completed_json) as Record<string, unknown>;
    let failure: MatrixError | undefined;
    if (auth.type !== undefined) {
      if (typeof auth.type !== 'string') throw Errors.badJson('"auth.type" must be a string');
      try {
        completed[auth.type] = await this.checkStage(auth.type, auth, request);
        await this.users.updateUiAuthSession(session.session_id, JSON.stringify(completed));
      } catch (err) {
        if (!(err instanceof AuthFailure)) throw err;
        failure = err;
      }
    }

    const done = Object.keys(auth).length > 0 && request.flows.some((flow) => flow.every((stage) => stage in completed));
    if (!done) {
      const body: JsonObject = { flows: request.flows.map((stages) => ({ stages: [...stages] })), params: {}, session: session.session_id };
      if (Object.keys(completed).length > 0) body.completed = Object.keys(completed);
      throw new UiaIncompleteError(session.session_id, body, failure);
    }
    if (request.requesterUserId && LOGIN_TYPE_PASSWORD in completed && completed[LOGIN_TYPE_PASSWORD] !== request.requesterUserId) {
      throw Errors.forbidden('Invalid auth');
    }
    return { sessionId: session.session_id, params, completed };
  }

  /** Server-side data of a session (never shown to the client); `{}` for an unknown session. */
  async sessionData(sessionId: string): Promise<JsonObject> {
    const session = await this.users.getUiAuthSession(sessionId);
    return session ? (JSON.parse(session.server_data_json) as JsonObject) : {};
  }

  async setSessionData(sessionId: string, key: string, value: string): Promise<void> {
    const data = await this.sessionData(sessionId);
    data[key] = value;
    await this.users.setUiAuthSessionServerData(sessionId, JSON.stringify(data));
  }

  private splitBody(request: UiaRequest): { auth: JsonObject; params: JsonObject } {
    const params: JsonObject = { ...request.body };
    const auth = params.auth;
    delete params.auth;
    for (const field of request.secretFields ?? []) delete params[field];
    if (auth === undefined || auth === null) return { auth: {}, params };
    if (!isJsonObject(auth)) throw Errors.badJson('"auth" must be a JSON object');
    return { auth, params };
  }

  private async createSession(request: UiaRequest, params: JsonObject): Promise<UiAuthSessionRow> {
    const now = this.now();
    if (now - this.lastPurgeMs > PURGE_INTERVAL_MS) {
      this.lastPurgeMs = now;
      await this.users.deleteUiAuthSessionsBefore(now - UIA_SESSION_LIFETIME_MS);
    }
    const row: UiAuthSessionRow = {
      session_id: randomBytes(18).toString('base64url'),
      method: request.method,
      uri: request.uri,
      body_json: JSON.stringify(params),
      completed_json: '{}',
      user_id: request.requesterUserId ?? null,
      created_ts: now,
      server_data_json: '{}',
    };
    await this.users.createUiAuthSession(row);
    return row;
  }

  private async existingSession(sessionId: string, request: UiaRequest): Promise<UiAuthSessionRow> {
    const session = await this.users.getUiAuthSession(sessionId);
    if (!session || session.created_ts < this.now() - UIA_SESSION_LIFETIME_MS) {
      throw Errors.unknown(`Unknown session ID: ${sessionId}`, 400);
    }
    if (session.method !== request.method || session.uri !== request.uri) {
      throw Errors.forbidden('Requested operation has changed during the UI authentication session.');
    }
    if (session.user_id !== (request.requesterUserId ?? null)) {
      throw Errors.forbidden('This authentication session belongs to another user.');
    }
    return session;
  }

  /** What a stage proves; throws `AuthFailure` when the attempt fails. */
  private async checkStage(type: string, auth: JsonObject, request: UiaRequest): Promise<unknown> {
    switch (type) {
      case LOGIN_TYPE_DUMMY:
        return true;
      case LOGIN_TYPE_PASSWORD:
        return this.passwords.authenticate(auth);
      default:
        throw Errors.unrecognized(400, `Unknown authentication type ${type} for ${request.method} ${request.uri}`);
    }
  }
}

function optionalSessionId(auth: JsonObject): string | undefined {
  const session = auth.session;
  if (session === undefined || session === null || session === '') return undefined;
  if (typeof session !== 'string') throw Errors.badJson('"auth.session" must be a string');
  return session;
}
