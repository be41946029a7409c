// Shared-secret registration, Synapse's admin API (`Syn:synapse/rest/admin/users.py`
// `UserRegisterServlet`, `Syn:docs/admin_api/register_api.md`), which `myelin register-user` and
// Synapse's `register_new_matrix_user` use.
//
// GET hands out a nonce; POST proves knowledge of `registration_shared_secret` with an HMAC-SHA1
// over the nonce and the request. Nonces live in this process's memory for 60 s and are single
// use, so both requests must reach the same process (the main one).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JsonObject } from '../../core/json.js';
import { Errors, type MatrixError } from '../../errors.js';
import { hashPassword } from '../kernel/auth.js';
import { loginOptionsOf, USER_TYPES, type RegisterResponse, type RegistrationHandler } from './registration.js';

export const NONCE_LIFETIME_MS = 60_000;
/** Synapse's limit on the username and password of this API. */
const MAX_FIELD_LENGTH = 512;

export class SharedSecretRegistration {
  private readonly nonces = new Map<string, number>();

  constructor(
    private readonly secret: string | undefined,
    private readonly registration: RegistrationHandler,
    private readonly now: () => number = Date.now,
  ) {}

  /** `GET /_synapse/admin/v1/register`: a new nonce. */
  newNonce(): string {
    this.forgetExpiredNonces();
    const nonce = randomBytes(64).toString('hex');
    this.nonces.set(nonce, this.now());
    return nonce;
  }

  /** `POST /_synapse/admin/v1/register`. */
  async register(body: JsonObject): Promise<RegisterResponse> {
    this.forgetExpiredNonces();
    if (!this.secret) throw badRequest('Shared secret registration is not enabled');
    if (body.nonce === undefined) throw Errors.badJson('nonce must be specified');
    const nonce = body.nonce;
    if (typeof nonce !== 'string' || !this.nonces.has(nonce)) throw badRequest('unrecognised nonce');
    // Used up even if the rest of the request is wrong.
    this.nonces.delete(nonce);

    const username = secretField(body, 'username', 'Invalid username');
    const password = secretField(body, 'password', 'Invalid password');
    const admin = Boolean(body.admin);
    const userType = body.user_type ?? null;
    if (userType !== null && (typeof userType !== 'string' || !USER_TYPES.includes(userType))) throw badRequest('Invalid user type');
    const displayname = body.displayname ?? null;
    if (displayname !== null && typeof displayname !== 'string') throw Errors.badJson('displayname must be a string');
    if (body.mac === undefined) throw Errors.badJson('mac must be specified');
    if (typeof body.mac !== 'string') throw Errors.badJson('mac must be a string');

    const expected = registrationMac(this.secret, { nonce, username, password, admin, userType });
    if (!sameText(expected, body.mac)) throw Errors.unknown('HMAC incorrect', 403);
    if (body.refresh_token !== undefined && typeof body.refresh_token !== 'boolean') throw badRequest('refresh_token must be a boolean');

    const userId = await this.registration.registerUser({
      localpart: username.toLowerCase(),
      passwordHash: await hashPassword(password),
      admin,
      userType,
      displayname,
    });
    return this.registration.loginDetails(userId, loginOptionsOf(body));
  }

  private forgetExpiredNonces(): void {
    const oldest = this.now() - NONCE_LIFETIME_MS;
    for (const [nonce, createdMs] of this.nonces) if (createdMs < oldest) this.nonces.delete(nonce);
  }
}

/**
 * The MAC a client sends: hex HMAC-SHA1 keyed by the shared secret over
 * `nonce \0 username \0 password \0 admin|notadmin [\0 user_type]`, the username as sent.
 */
export function registrationMac(
  secret: string,
  fields: { nonce: string; username: string; password: string; admin: boolean; userType?: string | null },
): string {
  const hmac = createHmac('sha1', Buffer.from(secret, 'utf8'));
  const parts = [fields.nonce, fields.username, fields.password, fields.admin ? 'admin' : 'notadmin'];
  if (fields.userType) parts.push(fields.userType);
  hmac.update(Buffer.from(parts.join('\u0000'), 'utf8'));
  return hmac.digest('hex');
}

function secretField(body: JsonObject, key: string, invalid: string): string {
  const value = body[key];
  if (value === undefined) throw Errors.badJson(`${key} must be specified`);
  if (typeof value !== 'string' || value.length > MAX_FIELD_LENGTH || value.includes('\u0000')) throw badRequest(invalid);
  return value;
}

/** Synapse's plain 400s here carry no specific code. */
function badRequest(message: string): MatrixError {
  return Errors.unknown(message, 400);
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}
