// Queries other servers make of ours (spec: server-server API §Querying for information,
// §Published Room Directory, §OpenID; `query.yaml`, `public_rooms.yaml`, `openid.yaml`): our
// aliases, our users' profiles, our public room directory (only when
// `allow_public_rooms_over_federation` says so, as Synapse), and who an OpenID token belongs to.

import { parseRoomAlias, parseUserId } from '../../core/identifiers.js';
import { readOpenIdToken } from '../../core/openid-tokens.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { PublicRoomsQuery, PublicRoomsResponse, RoomDirectoryApi } from '../room-reads/directory.js';
import type { ProfilesApi } from '../room-reads/profiles.js';

export class FederationQueries {
  constructor(
    private readonly core: CoreParts<'serverName' | 'config' | 'signingKey' | 'now'>,
    private readonly roomDirectory: Pick<RoomDirectoryApi, 'resolveAlias' | 'publicRooms'>,
    private readonly profiles: Pick<ProfilesApi, 'profile' | 'localProfile'>,
  ) {}

  /** `GET /query/directory?room_alias=`: one of our aliases. */
  async directory(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const parsed = parseRoomAlias(alias);
    if (!parsed) throw Errors.invalidParam('room_alias is not a room alias');
    if (parsed.serverName !== this.core.serverName) throw Errors.notFound(`Room alias ${alias} is not on this server`);
    return this.roomDirectory.resolveAlias(alias);
  }

  /** `GET /query/profile?user_id=&field=`: one of our users' profile, or one field of it. */
  async profile(userId: string, field: string | undefined): Promise<object> {
    const parsed = parseUserId(userId);
    if (!parsed) throw Errors.invalidParam('user_id is not a user id');
    if (parsed.serverName !== this.core.serverName) throw Errors.invalidParam('The user is not hosted on this homeserver');
    if (field === undefined) return this.profiles.profile(userId);
    if (field !== 'displayname' && field !== 'avatar_url') throw Errors.notFound(`The user has no ${field.slice(0, 100)}`);
    // A field an existing user has not set is answered `null` (spec: query.yaml, "MUST either be omitted or set to
    // `null`"), not 404: Synapse asks for each field on its own and fails its client's whole /profile on a 404 for one.
    const profile = await this.profiles.localProfile(userId);
    return { [field]: profile[field] };
  }

  /** `GET`/`POST /publicRooms`: 403 unless `allow_public_rooms_over_federation` (default false). */
  publicRooms(query: PublicRoomsQuery): Promise<PublicRoomsResponse> {
    if (!this.core.config.allow_public_rooms_over_federation) throw Errors.forbidden('The public room list is not shared over federation');
    return this.roomDirectory.publicRooms(query);
  }

  /** `GET /openid/userinfo?access_token=`: 401 M_UNKNOWN_TOKEN for a token not ours or expired. */
  openIdUserInfo(token: string): { sub: string } {
    const sub = readOpenIdToken(token, this.core.now(), [this.core.signingKey]);
    if (sub === undefined) throw Errors.unknownToken('Access token unknown or expired');
    return { sub };
  }
}
