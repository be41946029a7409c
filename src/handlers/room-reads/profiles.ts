// Profiles (S:data/api/client-server/profile.yaml; Syn:synapse/handlers/profile.py): a local
// user's display name and avatar, and their propagation into the rooms the user has joined.
//
// Only `displayname` and `avatar_url` are stored (the `profiles` table); other profile keys are
// refused rather than silently dropped.
//
// Propagation: a change is copied into a new `m.room.member` event (membership `join`, new
// displayname/avatar_url, the other content keys kept) in every room the user has joined, before
// the request is answered. A client that gets 200 then finds its member events already updated
// (read-your-writes), and nothing is lost if the process stops right after answering. Synapse HEAD
// answers first and updates the rooms from a persisted background task, which suits users in
// thousands of rooms; that is the direction to take when such users appear. A room that refuses
// the event (e.g. power levels forbid it) is logged and skipped; the others are still updated.
//
// Users of other servers: their profile is asked of their server (`/query/profile`, through
// federation/remote-queries.ts, which caches answers briefly).

import { isValidUserId, serverNameOf } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { RemoteQueries } from '../federation/remote-queries.js';
import type { CoreParts } from '../kernel/core.js';

export type ProfileField = 'displayname' | 'avatar_url';

export interface ProfileRequester {
  readonly userId: string;
  readonly isGuest: boolean;
}

export interface ProfilesApi {
  /** GET /profile/{userId}: 404 when the user is unknown or has nothing in their profile. */
  profile(userId: string): Promise<{ displayname?: string; avatar_url?: string }>;
  /** GET /profile/{userId}/{field}: 404 when the user is unknown or the field is unset. */
  field(userId: string, field: ProfileField): Promise<JsonObject>;
  /** One of our users' stored profile, unset fields `null`; 404 for a user not ours or not known. */
  localProfile(userId: string): Promise<{ displayname: string | null; avatar_url: string | null }>;
  /** PUT (a string) or DELETE (`null`) /profile/{userId}/{field}. */
  setField(requester: ProfileRequester, userId: string, field: ProfileField, value: string | null): Promise<void>;
}

/** Synapse's limits (MAX_DISPLAYNAME_LEN, MAX_AVATAR_URL_LEN), in characters. */
export const MAX_DISPLAYNAME_LENGTH = 256;
export const MAX_AVATAR_URL_LENGTH = 1000;

export class Profiles implements ProfilesApi {
  constructor(
    private readonly core: CoreParts<'serverName' | 'roomState' | 'eventsWriter' | 'log', 'users'>,
    private readonly remote?: Pick<RemoteQueries, 'profile'>,
  ) {}

  async profile(userId: string): Promise<{ displayname?: string; avatar_url?: string }> {
    if (this.isRemote(userId)) return this.remote!.profile(userId);
    const profile = await this.localProfile(userId);
    const out: { displayname?: string; avatar_url?: string } = {};
    if (profile.displayname !== null) out.displayname = profile.displayname;
    if (profile.avatar_url !== null) out.avatar_url = profile.avatar_url;
    // Synapse: a profile with nothing in it is "not found" (profile.yaml allows either reason).
    if (out.displayname === undefined && out.avatar_url === undefined) throw Errors.notFound('Profile was not found');
    return out;
  }

  async field(userId: string, field: ProfileField): Promise<JsonObject> {
    if (this.isRemote(userId)) return this.remote!.profile(userId, field);
    const value = (await this.localProfile(userId))[field];
    if (value === null) throw Errors.notFound(`The user has no ${field}`);
    return { [field]: value };
  }

  async setField(requester: ProfileRequester, userId: string, field: ProfileField, value: string | null): Promise<void> {
    if (!isValidUserId(userId)) throw Errors.invalidParam('Invalid user id');
    if (userId !== requester.userId && !(await this.isAdmin(requester.userId))) {
      throw Errors.forbidden(`Cannot set another user's ${field}`);
    }
    if (serverNameOf(userId) !== this.core.serverName) throw Errors.invalidParam('User is not hosted on this homeserver');
    if (field === 'avatar_url' && requester.isGuest) throw Errors.guestAccessForbidden();
    const stored = normalise(field, value);
    const existing = await this.core.stores.users.getProfile(userId);
    if (existing === undefined) throw Errors.notFound('Profile was not found');
    await this.core.stores.users.setProfileField(userId, field, stored);
    await this.propagate(userId, { ...existing, [field]: stored });
  }

  /** Updates the user's member event in each room they have joined (see the module comment). */
  private async propagate(userId: string, profile: { displayname: string | null; avatar_url: string | null }): Promise<void> {
    for (const roomId of await this.core.roomState.roomsOf(userId, ['join'])) {
      try {
        const current = await this.core.roomState.currentStateEvent(roomId, 'm.room.member', userId);
        const content: JsonObject = { ...current?.event.content, membership: 'join' };
        // A restricted join's authorisation belonged to that join; repeating it would claim a
        // new authorisation from a server that never gave one.
        delete content.join_authorised_via_users_server;
        for (const field of ['displayname', 'avatar_url'] as const) {
          const value = profile[field];
          if (value === null) delete content[field];
          else content[field] = value;
        }
        await this.core.eventsWriter.sendEvent(
          roomId,
          { type: 'm.room.member', stateKey: userId, sender: userId, content },
          { dedupeState: true },
        );
      } catch (err) {
        this.core.log.warn(
          { roomId, userId, err: err instanceof Error ? err.message : String(err) },
          'could not update the member event with the new profile',
        );
      }
    }
  }

  /** A valid user id of another server, when other servers can be asked. */
  private isRemote(userId: string): boolean {
    if (!isValidUserId(userId)) throw Errors.invalidParam('Invalid user id');
    return this.remote !== undefined && serverNameOf(userId) !== this.core.serverName;
  }

  async localProfile(userId: string): Promise<{ displayname: string | null; avatar_url: string | null }> {
    if (!isValidUserId(userId)) throw Errors.invalidParam('Invalid user id');
    const profile = serverNameOf(userId) === this.core.serverName ? await this.core.stores.users.getProfile(userId) : undefined;
    if (profile === undefined) throw Errors.notFound('Profile was not found');
    return profile;
  }

  private async isAdmin(userId: string): Promise<boolean> {
    return (await this.core.stores.users.getUser(userId))?.is_admin === 1;
  }
}

/** The value to store: validated, trimmed; an empty string unsets the field (Synapse). */
function normalise(field: ProfileField, value: string | null): string | null {
  if (value === null) return null;
  const max = field === 'displayname' ? MAX_DISPLAYNAME_LENGTH : MAX_AVATAR_URL_LENGTH;
  if (value.length > max) throw Errors.invalidParam(`${field} is too long (max ${max})`);
  const stored = field === 'displayname' ? value.trim() : value;
  return stored === '' ? null : stored;
}
