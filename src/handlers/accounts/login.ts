// Login (S:data/api/client-server/login.yaml; `Syn:synapse/rest/client/login.py`): password login
// only, with Synapse's three rate limits (per IP, failed attempts per user, successes per user).

import { z } from 'zod';
import type { JsonObject } from '../../core/json.js';
import { Errors, optionalBoolean, parseInput, requiredString } from '../../errors.js';
import type { AuthHandler } from '../kernel/auth.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import { newDeviceFields } from './fields.js';
import type { PasswordAuthenticator } from './password-auth.js';
import { LOGIN_TYPE_PASSWORD } from './uia.js';

const loginTypeFields = z.object({ type: requiredString, refresh_token: optionalBoolean });

export interface LoginResponse {
  user_id: string;
  access_token: string;
  device_id: string;
  home_server: string;
  well_known?: JsonObject;
}

export class LoginHandler {
  constructor(
    private readonly deps: {
      readonly serverName: string;
      /** Sent back as `well_known` when set, as from /.well-known/matrix/client. */
      readonly publicBaseUrl: string | undefined;
      readonly auth: AuthHandler;
      readonly passwords: PasswordAuthenticator;
      readonly rateLimits: RateLimits;
    },
  ) {}

  /** `GET /login`. */
  flows(): { flows: { type: string }[] } {
    return { flows: [{ type: LOGIN_TYPE_PASSWORD }] };
  }

  /** `POST /login`. */
  async login(body: JsonObject, clientIp: string): Promise<LoginResponse> {
    const { type } = parseInput(loginTypeFields, body);
    if (type !== LOGIN_TYPE_PASSWORD) throw Errors.unknown(`Unknown login type ${type}`, 400);
    const { device_id: deviceId, initial_device_display_name: displayName } = parseInput(newDeviceFields, body);

    this.deps.rateLimits.loginAddress.check(clientIp);
    const userId = await this.deps.passwords.authenticate(body);
    this.deps.rateLimits.loginAccount.check(userId.toLowerCase());

    const session = await this.deps.auth.createSession(userId, { deviceId, displayName: displayName ?? null });
    const response: LoginResponse = {
      user_id: userId,
      access_token: session.accessToken,
      device_id: session.deviceId,
      home_server: this.deps.serverName,
    };
    if (this.deps.publicBaseUrl) response.well_known = { 'm.homeserver': { base_url: this.deps.publicBaseUrl } };
    return response;
  }
}
