// Accounts: registration (with user-interactive auth), login, logout, passwords, deactivation,
// devices, shared-secret admin registration, rate limiting.
//
// None of this writes a stream: accounts, devices and tokens are plain rows any process may
// write. Device-list changes (the `device_lists` stream) belong to end-to-end encryption, which
// hooks into `DeviceHandler.deleteDevices` with `addDeletionStep`.

import { componentLogger } from '../../util/log.js';
import type { CoreDeps } from '../kernel/core.js';
import { RateLimits } from '../kernel/rate-limit.js';
import { AccountHandler } from './account.js';
import { DeviceHandler } from './devices.js';
import { LoginHandler } from './login.js';
import { PasswordAuthenticator } from './password-auth.js';
import { RegistrationHandler } from './registration.js';
import { SharedSecretRegistration } from './shared-secret.js';
import { UserInteractiveAuth } from './uia.js';

export interface AccountServices {
  /** Every rate limiter (`rc_*`); `rateLimits.checkMessage(userId)` for sends, `rateLimits.joinsLocal.check(userId)` for joins. */
  readonly rateLimits: RateLimits;
  /** User-interactive auth, for any endpoint that needs it (`check`, session data). */
  readonly userInteractiveAuth: UserInteractiveAuth;
  /** Password checks (login and the `m.login.password` stage). */
  readonly passwordAuth: PasswordAuthenticator;
  readonly registration: RegistrationHandler;
  readonly login: LoginHandler;
  readonly devices: DeviceHandler;
  /** Logout, password change, deactivation, and re-authentication of a logged-in user. */
  readonly accountManagement: AccountHandler;
  /** The admin API's nonce-and-HMAC registration (main process only: nonces are in memory). */
  readonly sharedSecretRegistration: SharedSecretRegistration;
}

export async function createAccountServices(core: CoreDeps): Promise<AccountServices> {
  const users = core.stores.users;
  const rateLimits = new RateLimits(core.config, (userId) => users.isAdmin(userId), core.now);
  const passwordAuth = new PasswordAuthenticator(users, core.serverName, rateLimits);
  const userInteractiveAuth = new UserInteractiveAuth(users, passwordAuth, core.now);
  const devices = new DeviceHandler(users, core.auth, core.now);
  const registration = new RegistrationHandler({
    serverName: core.serverName,
    config: core.config,
    users,
    auth: core.auth,
    uia: userInteractiveAuth,
    rateLimits,
    now: core.now,
  });
  return {
    rateLimits,
    userInteractiveAuth,
    passwordAuth,
    registration,
    login: new LoginHandler({
      serverName: core.serverName,
      publicBaseUrl: core.config.public_baseurl,
      auth: core.auth,
      passwords: passwordAuth,
      rateLimits,
    }),
    devices,
    accountManagement: new AccountHandler({
      users,
      auth: core.auth,
      devices,
      uia: userInteractiveAuth,
      roomState: core.roomState,
      eventsWriter: core.eventsWriter,
      log: componentLogger(core.log, 'accounts'),
    }),
    sharedSecretRegistration: new SharedSecretRegistration(core.config.registration_shared_secret, registration, core.now),
  };
}
