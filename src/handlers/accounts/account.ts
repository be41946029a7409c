// The logged-in user's account: logout, password change and deactivation
// (S:data/api/client-server/{logout,password_management,account_deactivation}.yaml;
// `Syn:synapse/rest/client/{logout,account}.py`, `Syn:synapse/handlers/deactivate_account.py`).

import { z } from 'zod';
import type { JsonObject } from '../../core/json.js';
import { Errors, optionalBoolean, optionalString, parseInput } from '../../errors.js';
import type { UsersStore } from '../../storage/users-store.js';
import type { Logger } from '../../util/log.js';
import { hashPassword, type AuthHandler } from '../kernel/auth.js';
import type { EventsWriterApi } from '../kernel/events-writer.js';
import type { Requester } from '../kernel/requester.js';
import type { RoomStateReader } from '../kernel/room-state.js';
import type { DeviceHandler } from './devices.js';
import { boundedString } from './fields.js';
import { MAX_PASSWORD_LENGTH } from './password-auth.js';
import { LOGIN_TYPE_PASSWORD, UiaIncompleteError, type UiaFlows, type UserInteractiveAuth } from './uia.js';

const passwordChangeFields = z.object({
  new_password: boundedString(MAX_PASSWORD_LENGTH, 'M_BAD_JSON', `must be at most ${MAX_PASSWORD_LENGTH} characters`),
  logout_devices: optionalBoolean,
});

const deactivationFields = z.object({ erase: optionalBoolean, id_server: optionalString });

/** Where a user-interactive request came from. */
export interface UiaContext {
  readonly method: string;
  readonly uri: string;
  readonly body: JsonObject;
}

const NEW_PASSWORD_HASH_KEY = 'new_password_hash';

export class AccountHandler {
  constructor(
    private readonly deps: {
      readonly users: UsersStore;
      readonly auth: AuthHandler;
      readonly devices: DeviceHandler;
      readonly uia: UserInteractiveAuth;
      readonly roomState: RoomStateReader;
      readonly eventsWriter: EventsWriterApi;
      readonly log: Logger;
    },
  ) {}

  /**
   * The flows that re-authenticate a logged-in user: their password, if they have one. A user
   * without one (none can be made yet) is offered no flow, as in Synapse.
   */
  async reauthFlows(userId: string): Promise<UiaFlows> {
    const user = await this.deps.users.getUser(userId);
    return user?.password_hash ? [[LOGIN_TYPE_PASSWORD]] : [];
  }

  /** Runs user-interactive auth proving the requester is who the access token says. */
  async reauthenticate(
    requester: Requester,
    context: UiaContext,
    secretFields: readonly string[] = [],
  ): Promise<{ sessionId: string; params: JsonObject }> {
    return this.deps.uia.check({
      ...context,
      flows: await this.reauthFlows(requester.userId),
      requesterUserId: requester.userId,
      secretFields,
    });
  }

  /** `POST /logout`: this session's device goes, with all of its tokens. */
  async logout(requester: Requester): Promise<void> {
    await this.deps.devices.deleteDevices(requester.userId, [requester.deviceId]);
  }

  /** `POST /logout/all`: every device and every token of the user. */
  async logoutAll(userId: string): Promise<void> {
    await this.deps.devices.deleteAllDevices(userId);
    this.deps.auth.invalidateTokens(await this.deps.users.deleteAccessTokensOfUser(userId));
  }

  /**
   * `POST /account/password`. The new password may come in the first request only: its hash is
   * kept in the session, never the password itself. With `logout_devices` (the default) every
   * other device and token of the user is removed; the requester's token stays valid.
   */
  async changePassword(requester: Requester, context: UiaContext): Promise<void> {
    const { new_password: newPassword } = parseInput(passwordChangeFields, context.body);
    let result;
    try {
      result = await this.reauthenticate(requester, context, ['new_password']);
    } catch (err) {
      if (err instanceof UiaIncompleteError && newPassword !== undefined) {
        await this.deps.uia.setSessionData(err.sessionId, NEW_PASSWORD_HASH_KEY, await hashPassword(newPassword));
      }
      throw err;
    }
    let passwordHash: string | undefined;
    if (newPassword !== undefined) passwordHash = await hashPassword(newPassword);
    else {
      const stored = (await this.deps.uia.sessionData(result.sessionId))[NEW_PASSWORD_HASH_KEY];
      if (typeof stored === 'string') passwordHash = stored;
    }
    if (passwordHash === undefined) throw Errors.missingParam('Missing params: password');
    const logoutDevices = parseInput(passwordChangeFields, result.params).logout_devices ?? true;

    await this.deps.users.setPasswordHash(requester.userId, passwordHash);
    if (logoutDevices) {
      await this.deps.devices.deleteAllDevices(requester.userId, requester.deviceId);
      this.deps.auth.invalidateTokens(await this.deps.users.deleteAccessTokensOfUser(requester.userId, requester.tokenHash));
    }
  }

  /**
   * `POST /account/deactivate`: the account can no longer log in (its password is removed), every
   * device and token goes, and the user leaves every room they are in or invited to. Erasure
   * (`erase`) is accepted but not implemented: events are not redacted for later joiners.
   */
  async deactivate(requester: Requester, context: UiaContext): Promise<{ id_server_unbind_result: 'success' }> {
    parseInput(deactivationFields, context.body);
    await this.reauthenticate(requester, context);
    const { userId } = requester;
    await this.deps.users.setDeactivated(userId);
    await this.deps.devices.deleteAllDevices(userId);
    this.deps.auth.invalidateTokens(await this.deps.users.deleteAccessTokensOfUser(userId));
    await this.leaveAllRooms(userId);
    // This server binds no third-party identifiers, so none needed unbinding (the spec's "success").
    return { id_server_unbind_result: 'success' };
  }

  private async leaveAllRooms(userId: string): Promise<void> {
    const rooms = await this.deps.roomState.roomsOf(userId, ['join', 'invite', 'knock']);
    for (const roomId of rooms) {
      try {
        await this.deps.eventsWriter.sendEvent(roomId, {
          type: 'm.room.member',
          stateKey: userId,
          sender: userId,
          content: { membership: 'leave' },
        });
      } catch (err) {
        // One room refusing (e.g. an invite from a server we cannot reach) must not stop the rest.
        this.deps.log.warn({ err, userId, roomId }, 'could not leave a room while deactivating an account');
      }
    }
  }
}
