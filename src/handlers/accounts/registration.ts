// Registration (S:data/api/client-server/registration.yaml; `Syn:synapse/rest/client/register.py`,
// `Syn:synapse/handlers/register.py`).
//
// Open registration offers one flow, `m.login.dummy`, and only when the config allows
// registration without verification. Username checks run before user-interactive auth, so a bad
// name is a 400 at once. The password is hashed into the session's server-side data when auth is
// still incomplete, so a follow-up carrying only `auth` can finish the registration.

import { z } from 'zod';
import type { JsonObject } from '../../core/json.js';
import { MAX_IDENTIFIER_BYTES, isValidUserLocalpart, utf8Length } from '../../core/identifiers.js';
import { Errors, optionalBoolean, parseInput } from '../../errors.js';
import type { UsersStore } from '../../storage/users-store.js';
import { hashPassword, type AuthHandler } from '../kernel/auth.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import { boundedString, newDeviceFields } from './fields.js';
import { MAX_PASSWORD_LENGTH } from './password-auth.js';
import { LOGIN_TYPE_DUMMY, UiaIncompleteError, type UserInteractiveAuth } from './uia.js';

/** What `POST /register` (and the shared-secret admin API) answers. */
export interface RegisterResponse {
  user_id: string;
  home_server: string;
  access_token?: string;
  device_id?: string;
}

export interface RegisterRequest {
  readonly method: string;
  readonly uri: string;
  readonly body: JsonObject;
  /** The `kind` query parameter. */
  readonly kind: string | null;
  readonly clientIp: string;
}

/** Where the registered account should be logged in, and whether at all. */
export interface LoginOptions {
  readonly deviceId?: string;
  readonly initialDeviceDisplayName?: string;
  readonly inhibitLogin?: boolean;
}

/** The user types the admin API accepts (`Syn:synapse/api/constants.py` `UserTypes`). */
export const USER_TYPES: readonly string[] = ['support', 'bot'];

/** Names in the request body are refused above this length, before any other check (Synapse). */
const MAX_USERNAME_LENGTH = 512;

const PASSWORD_HASH_KEY = 'password_hash';
const REGISTERED_USER_KEY = 'registered_user_id';

export class RegistrationHandler {
  constructor(
    private readonly deps: {
      readonly serverName: string;
      readonly config: { readonly enable_registration: boolean; readonly enable_registration_without_verification: boolean };
      readonly users: UsersStore;
      readonly auth: AuthHandler;
      readonly uia: UserInteractiveAuth;
      readonly rateLimits: RateLimits;
      readonly now: () => number;
    },
  ) {}

  /** Open registration needs both switches: this server offers no verification stage. */
  get enabled(): boolean {
    return this.deps.config.enable_registration && this.deps.config.enable_registration_without_verification;
  }

  /** `POST /register`. */
  async register(request: RegisterRequest): Promise<RegisterResponse> {
    const { body, clientIp } = request;
    this.deps.rateLimits.registration.check(clientIp, { update: false });
    const kind = request.kind ?? 'user';
    if (kind === 'guest') throw Errors.guestAccessForbidden('Guest access is disabled');
    if (kind !== 'user') throw Errors.unrecognized(400, `Do not understand membership kind: ${kind}`);
    const { username } = parseInput(nameFields, body);
    if (!this.enabled) throw Errors.forbidden('Registration has been disabled');

    const { password } = parseInput(passwordField, body);
    const sessionBody: JsonObject = { ...body };
    // A client bug sent the display name alone on a follow-up, wiping out the stored request
    // (Synapse ignores it in that case too).
    if (password === undefined) delete sessionBody.initial_device_display_name;
    loginOptionsOf(sessionBody);

    const sessionId = sessionIdOf(body);
    const sessionData = sessionId === undefined ? {} : await this.deps.uia.sessionData(sessionId);
    const registeredUserId = stringOrUndefined(sessionData[REGISTERED_USER_KEY]);
    let passwordHash = stringOrUndefined(sessionData[PASSWORD_HASH_KEY]);
    if (username !== undefined) await this.checkUsername(username.toLowerCase(), { alreadyRegistered: registeredUserId });

    let result;
    try {
      result = await this.deps.uia.check({
        method: request.method,
        uri: request.uri,
        body: sessionBody,
        flows: [[LOGIN_TYPE_DUMMY]],
        secretFields: ['password'],
      });
    } catch (err) {
      if (err instanceof UiaIncompleteError && password !== undefined && passwordHash === undefined) {
        await this.deps.uia.setSessionData(err.sessionId, PASSWORD_HASH_KEY, await hashPassword(password));
      }
      throw err;
    }

    let userId = registeredUserId;
    if (userId === undefined) {
      if (password !== undefined) passwordHash = await hashPassword(password);
      if (passwordHash === undefined) throw Errors.missingParam('Missing params: password');
      const desired = parseInput(nameFields, result.params).username?.toLowerCase();
      this.deps.rateLimits.registration.check(clientIp);
      userId = await this.registerUser({ localpart: desired, passwordHash });
      await this.deps.uia.setSessionData(result.sessionId, REGISTERED_USER_KEY, userId);
    }
    return this.loginDetails(userId, loginOptionsOf(result.params));
  }

  /** `GET /register/available`: 400 when the name is invalid or taken. */
  async checkAvailable(username: string): Promise<void> {
    if (!this.enabled) throw Errors.forbidden('Registration has been disabled');
    await this.checkUsername(username);
  }

  /**
   * Checks a wanted localpart (already lower-cased by the caller where it should be): the
   * grammar, the length of the whole id, and that no user has it in any case. Returns the user id.
   * `alreadyRegistered` is the user this session created earlier, which may keep its name.
   */
  async checkUsername(localpart: string, options: { alreadyRegistered?: string } = {}): Promise<string> {
    if (!isValidUserLocalpart(localpart) && localpart !== '') {
      throw Errors.invalidUsername("User ID can only contain characters a-z, 0-9, or '=_-./+'");
    }
    if (localpart === '') throw Errors.invalidUsername('User ID cannot be empty');
    if (localpart.startsWith('_')) throw Errors.invalidUsername('User ID may not begin with _');
    const userId = `@${localpart}:${this.deps.serverName}`;
    if (options.alreadyRegistered !== undefined) {
      if (options.alreadyRegistered === userId) return userId;
      throw Errors.unknown('A different user ID has already been registered for this session', 400);
    }
    if (utf8Length(userId) > MAX_IDENTIFIER_BYTES) {
      throw Errors.invalidUsername(`User ID may not be longer than ${MAX_IDENTIFIER_BYTES} characters`);
    }
    if ((await this.deps.users.findUsersIgnoringCase(userId)).length > 0) {
      throw Errors.userInUse();
    }
    // Numeric localparts are what this server generates when no username is given.
    if (/^\d+$/.test(localpart)) throw Errors.invalidUsername('Numeric user IDs are reserved for guest users.');
    return userId;
  }

  /**
   * Creates an account. Without a localpart, the next free number is used (as Synapse does).
   * Skips rate limits and the registration switches: callers apply those that concern them.
   */
  async registerUser(options: {
    localpart?: string;
    passwordHash: string | null;
    admin?: boolean;
    userType?: string | null;
    displayname?: string | null;
  }): Promise<string> {
    const create = (localpart: string, userId: string) =>
      this.deps.users.createUser(
        {
          userId,
          passwordHash: options.passwordHash,
          isAdmin: options.admin,
          userType: options.userType ?? null,
          displayname: options.displayname ?? localpart,
        },
        this.deps.now(),
      );
    if (options.localpart !== undefined) {
      const userId = await this.checkUsername(options.localpart);
      if (!(await create(options.localpart, userId))) throw Errors.userInUse();
      return userId;
    }
    // Another registration may take the same number at the same moment: try the next ones.
    const start = (await this.deps.users.countUsers()) + 1;
    for (let attempt = 0; attempt < 100; attempt++) {
      const localpart = String(start + attempt);
      const userId = `@${localpart}:${this.deps.serverName}`;
      if ((await this.deps.users.findUsersIgnoringCase(userId)).length === 0 && (await create(localpart, userId))) return userId;
    }
    throw Errors.unknown('Unable to find a free user ID');
  }

  /** The response to a registration: the account, and a new login unless `inhibit_login`. */
  async loginDetails(userId: string, options: LoginOptions): Promise<RegisterResponse> {
    const response: RegisterResponse = { user_id: userId, home_server: this.deps.serverName };
    if (options.inhibitLogin) return response;
    const session = await this.deps.auth.createSession(userId, {
      deviceId: options.deviceId,
      displayName: options.initialDeviceDisplayName ?? null,
    });
    response.access_token = session.accessToken;
    response.device_id = session.deviceId;
    return response;
  }
}

/** `username` (and `refresh_token`) from a request body, type-checked; undefined when not given. */
const nameFields = z.object({
  refresh_token: optionalBoolean,
  username: boundedString(MAX_USERNAME_LENGTH, 'M_INVALID_USERNAME', 'Invalid username'),
});

const passwordField = z.object({ password: boundedString(MAX_PASSWORD_LENGTH, 'M_BAD_JSON', 'Invalid password') });

const loginFields = newDeviceFields.extend({ inhibit_login: optionalBoolean });

/** The login fields of a registration body (`device_id`, `initial_device_display_name`, `inhibit_login`). */
export function loginOptionsOf(body: JsonObject): LoginOptions {
  const fields = parseInput(loginFields, body);
  return {
    deviceId: fields.device_id,
    initialDeviceDisplayName: fields.initial_device_display_name,
    inhibitLogin: fields.inhibit_login,
  };
}

function sessionIdOf(body: JsonObject): string | undefined {
  const auth = body.auth;
  if (auth === null || typeof auth !== 'object' || Array.isArray(auth)) return undefined;
  const session = auth.session;
  return typeof session === 'string' && session !== '' ? session : undefined;
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
