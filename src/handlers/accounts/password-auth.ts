// Password authentication, shared by `POST /login` and the `m.login.password` stage of
// user-interactive auth (S:content/client-server-api/_index.md §Password-based, §Identifier types;
// `Syn:synapse/handlers/auth.py` `validate_login`).

import { z } from 'zod';
import type { JsonObject } from '../../core/json.js';
import { Errors, MatrixError, optionalObject, optionalString, parseInput } from '../../errors.js';
import type { UsersStore } from '../../storage/users-store.js';
import { hashPassword, verifyPassword } from '../kernel/auth.js';
import type { RateLimits } from '../kernel/rate-limit.js';

/** Synapse refuses longer passwords before hashing them. */
export const MAX_PASSWORD_LENGTH = 512;

/**
 * A failed attempt to prove who one is (wrong password, unknown user). User-interactive auth
 * reports it inside its 401 so the client may try again; other errors (bad input) end the request.
 */
export class AuthFailure extends MatrixError {
  constructor(error: MatrixError) {
    super(error.status, error.errcode, error.message, error.extra, error.headers);
  }
}

export function invalidCredentials(): AuthFailure {
  return new AuthFailure(Errors.forbidden('Invalid username or password'));
}

const identifierField = z.object({ identifier: optionalObject });
const userField = z.object({ user: optionalString });

/**
 * The user a login or auth submission names, from `identifier` or the deprecated top-level
 * `user` / `medium` + `address`. Returns a qualified user id (not checked to exist).
 * Third-party identifiers are understood but this server binds none, so they never match.
 */
export function userIdOfSubmission(submission: JsonObject, serverName: string): string {
  let identifier = parseInput(identifierField, submission).identifier;
  const legacyUser = submission.user;
  if (legacyUser !== undefined && legacyUser !== null && legacyUser !== '') {
    if (typeof legacyUser !== 'string') throw Errors.badJson('"user" must be a string');
    identifier = { type: 'm.id.user', user: legacyUser };
  }
  const medium = submission.medium;
  const address = submission.address;
  if (medium && address) identifier = { type: 'm.id.thirdparty', medium, address };
  if (!identifier || Object.keys(identifier).length === 0) throw Errors.invalidParam('Invalid login submission');
  if (identifier.type === undefined) throw Errors.missingParam("'identifier' dict has no key 'type'");

  switch (identifier.type) {
    case 'm.id.user': {
      const user = parseInput(userField, identifier).user;
      if (!user) throw Errors.missingParam("User identifier is missing 'user' key");
      return user.startsWith('@') ? user : `@${user}:${serverName}`;
    }
    case 'm.id.thirdparty':
      if (typeof identifier.medium !== 'string' || typeof identifier.address !== 'string') {
        throw Errors.invalidParam('Invalid thirdparty identifier');
      }
      throw invalidCredentials();
    case 'm.id.phone':
      if (typeof identifier.country !== 'string' || typeof identifier.phone !== 'string') {
        throw Errors.invalidParam('Invalid phone-type identifier');
      }
      throw invalidCredentials();
    default:
      throw Errors.unknown('Unknown login identifier type', 400);
  }
}

export class PasswordAuthenticator {
  /** Checked against when the user does not exist, so both answers take as long. */
  private decoyHash: Promise<string> | undefined;

  constructor(
    private readonly users: UsersStore,
    private readonly serverName: string,
    private readonly rateLimits: RateLimits,
  ) {}

  /**
   * Checks `password` and the identifier of `submission`; returns the canonical user id.
   * Throws `AuthFailure` (403 `M_FORBIDDEN`, or `M_USER_DEACTIVATED`) when the credentials do
   * not prove who the user is, 429 after too many failures for that user, 400 for bad input.
   */
  async authenticate(submission: JsonObject): Promise<string> {
    const password = submission.password;
    if (password === undefined || password === null) throw Errors.missingParam('Missing "password"');
    if (typeof password !== 'string') throw Errors.badJson('"password" must be a string');
    const claimed = userIdOfSubmission(submission, this.serverName);
    const failureKey = claimed.toLowerCase();
    this.rateLimits.loginFailedAttempts.check(failureKey, { update: false });

    const user = await this.findUser(claimed);
    if (user?.deactivated) {
      // Deactivation removed the password: there is nothing left to check it against.
      throw new AuthFailure(Errors.userDeactivated());
    }
    const stored = user?.passwordHash ?? null;
    const matches = password.length <= MAX_PASSWORD_LENGTH && (await verifyPassword(password, stored ?? (await this.decoy())));
    if (!user || stored === null || !matches) {
      this.rateLimits.loginFailedAttempts.record(failureKey);
      throw invalidCredentials();
    }
    return user.userId;
  }

  /**
   * The account `userId` names, ignoring case as Synapse does: an exact match, or the only
   * match that differs in case. Several inexact matches name no one.
   */
  async findUser(userId: string): Promise<{ userId: string; passwordHash: string | null; deactivated: boolean } | undefined> {
    const matches = await this.users.findUsersIgnoringCase(userId);
    const match = matches.length === 1 ? matches[0] : matches.find((m) => m.user_id === userId);
    return match && { userId: match.user_id, passwordHash: match.password_hash, deactivated: match.deactivated === 1 };
  }

  private decoy(): Promise<string> {
    this.decoyHash ??= hashPassword('decoy password for unknown users');
    return this.decoyHash;
  }
}
