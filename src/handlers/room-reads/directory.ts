// The room directory: local aliases (S:data/api/client-server/directory.yaml), whether a room is
// published, and the published room list (list_public_rooms.yaml). Facts from
// Syn:synapse/handlers/directory.py and Syn:synapse/handlers/room_list.py.
//
// Nothing here is a stream: aliases and the published flag are plain rows read straight from the
// database (no per-process cache), so any process sees a change at once.

import { stateKey as makeStateKey, type RoomEvent, type StateKey } from '../../core/events.js';
import { isValidRoomId, parseRoomAlias, serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, parseJsonInput, type JsonObject } from '../../core/json.js';
import { powerLevelsFromState } from '../../core/power-levels.js';
import { effectiveHistoryVisibility } from '../../core/visibility.js';
import { Errors, MatrixError } from '../../errors.js';
import type { DirectoryStore } from '../../storage/directory-store.js';
import type { RemotePublicRoomsQuery, RemotePublicRoomsResponse, RemoteQueries } from '../federation/remote-queries.js';
import type { CoreParts } from '../kernel/core.js';
import type { RoomState } from '../kernel/room-state.js';
import type { RoomAccess } from './access.js';

export interface DirectoryRequester {
  readonly userId: string;
  readonly isGuest: boolean;
}

export type DirectoryVisibility = 'public' | 'private';

export interface PublicRoomsQuery {
  /** Default 100; 0 means "no limit"; never more than 100 (Synapse). */
  readonly limit?: number | undefined;
  readonly since?: string | undefined;
  readonly genericSearchTerm?: string | undefined;
  /** `null` stands for rooms without a type. */
  readonly roomTypes?: ReadonlyArray<string | null> | undefined;
  /** A third-party network's list; this server has none, so it is always empty. */
  readonly thirdPartyInstanceId?: string | undefined;
}

export interface PublicRoomsChunk {
  room_id: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule?: string;
  room_type?: string;
  avatar_url?: string;
}

export interface PublicRoomsResponse {
  chunk: PublicRoomsChunk[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

export interface RoomDirectoryApi {
  /** GET /directory/room/{roomAlias} */
  resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }>;
  /** PUT /directory/room/{roomAlias} */
  createAlias(requester: DirectoryRequester, alias: string, roomId: string): Promise<void>;
  /** DELETE /directory/room/{roomAlias} */
  deleteAlias(requester: DirectoryRequester, alias: string): Promise<void>;
  /** GET /rooms/{roomId}/aliases */
  roomAliases(requester: DirectoryRequester, roomId: string): Promise<{ aliases: string[] }>;
  /** GET /directory/list/room/{roomId} */
  visibility(roomId: string): Promise<{ visibility: DirectoryVisibility }>;
  /** PUT /directory/list/room/{roomId} */
  setVisibility(requester: DirectoryRequester, roomId: string, visibility: DirectoryVisibility): Promise<void>;
  /** GET and POST /publicRooms, for this server's list. */
  publicRooms(query: PublicRoomsQuery): Promise<PublicRoomsResponse>;
  /** GET and POST /publicRooms?server=: another server's list, asked of it over federation. */
  remotePublicRooms(server: string, query: RemotePublicRoomsQuery): Promise<RemotePublicRoomsResponse>;
}

/** Synapse's MAX_PUBLIC_ROOMS_IN_RESPONSE. */
export const MAX_PUBLIC_ROOMS = 100;
/** Join rules under which a published room is listed (besides world-readable rooms), as Synapse. */
const LISTED_JOIN_RULES = new Set(['public', 'knock', 'knock_restricted']);

export class RoomDirectory implements RoomDirectoryApi {
  constructor(
    private readonly core: CoreParts<'roomState' | 'serverName' | 'eventsWriter' | 'log', 'events' | 'users'>,
    private readonly store: DirectoryStore,
    private readonly access: RoomAccess,
    private readonly remote?: Pick<RemoteQueries, 'resolveAlias' | 'publicRooms'>,
  ) {}

  async resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    this.parseAlias(alias);
    if (!this.isLocal(alias) && this.remote) {
      // Another server's alias: asked of that server (spec: client-server API §Room aliases).
      const { roomId, servers } = await this.remote.resolveAlias(alias);
      return { room_id: roomId, servers };
    }
    const row = this.isLocal(alias) ? await this.store.getAlias(alias) : undefined;
    if (row === undefined) throw Errors.notFound(`Room alias ${alias} not found`);
    // The servers of the room's joined members, ours first: where a joining server can ask.
    const servers = new Set([this.core.serverName]);
    for (const userId of await this.core.roomState.members(row.room_id, 'join')) {
      const server = serverNameOf(userId);
      if (server !== undefined) servers.add(server);
    }
    return { room_id: row.room_id, servers: [...servers] };
  }

  async createAlias(requester: DirectoryRequester, alias: string, roomId: string): Promise<void> {
    const { localpart } = this.parseAlias(alias);
    if (localpart === '' || /\s/.test(localpart)) throw Errors.invalidParam('Invalid characters in room alias');
    if (!this.isLocal(alias)) throw Errors.invalidParam('Room alias must be local');
    if (!(await this.core.roomState.roomExists(roomId))) throw Errors.unknown('Room does not exist', 400);
    // Synapse's default `require_membership_for_aliases: true`; server admins are exempt.
    if (!(await this.isAdmin(requester.userId)) && (await this.core.roomState.membership(roomId, requester.userId)) !== 'join') {
      throw Errors.forbidden('You must be in the room to create an alias for it');
    }
    if (!(await this.store.createAlias(alias, roomId, requester.userId))) {
      throw Errors.unknown(`Room alias ${alias} already exists`, 409);
    }
  }

  async deleteAlias(requester: DirectoryRequester, alias: string): Promise<void> {
    this.parseAlias(alias);
    if (!this.isLocal(alias)) throw Errors.invalidParam('Room alias must be local');
    const row = await this.store.getAlias(alias);
    if (row === undefined) throw Errors.notFound('Unknown room alias');
    if (row.creator !== requester.userId && !(await this.canEditDirectory(requester, row.room_id))) {
      throw Errors.forbidden("You don't have permission to delete the alias.");
    }
    const roomId = await this.store.deleteAlias(alias);
    if (roomId === undefined) throw Errors.notFound('Unknown room alias');
    await this.dropFromCanonicalAlias(requester.userId, roomId, alias);
  }

  async roomAliases(requester: DirectoryRequester, roomId: string): Promise<{ aliases: string[] }> {
    if (!(await this.isAdmin(requester.userId))) await this.access.requireReader(roomId, requester.userId, { allowDeparted: false });
    return { aliases: await this.store.aliasesOfRoom(roomId) };
  }

  async visibility(roomId: string): Promise<{ visibility: DirectoryVisibility }> {
    const room = await this.core.stores.events.getRoom(roomId);
    if (room === undefined) throw Errors.notFound('Unknown room');
    return { visibility: room.is_public ? 'public' : 'private' };
  }

  async setVisibility(requester: DirectoryRequester, roomId: string, visibility: DirectoryVisibility): Promise<void> {
    if (requester.isGuest) throw Errors.forbidden('Guests cannot edit the published room list');
    if ((await this.core.stores.events.getRoom(roomId)) === undefined) throw Errors.notFound('Unknown room');
    if (!(await this.canEditDirectory(requester, roomId))) {
      throw Errors.forbidden('This server requires you to be a moderator in the room to edit its room list entry');
    }
    await this.core.stores.events.setRoomPublic(roomId, visibility === 'public');
  }

  async publicRooms(query: PublicRoomsQuery): Promise<PublicRoomsResponse> {
    const limit = query.limit === undefined || query.limit === 0 || query.limit > MAX_PUBLIC_ROOMS ? MAX_PUBLIC_ROOMS : query.limit;
    const bound = query.since === undefined ? undefined : decodeListToken(query.since);
    const rooms = query.thirdPartyInstanceId === undefined ? await this.listedRooms(query) : [];
    const response: PublicRoomsResponse = { chunk: [], total_room_count_estimate: rooms.length };

    let start: number;
    let end: number;
    if (bound === undefined || bound.forwards) {
      start = bound === undefined ? 0 : countWhile(rooms, (room) => !isAfter(keyOf(room), bound));
      end = Math.min(rooms.length, start + limit);
    } else {
      end = countWhile(rooms, (room) => isAfter(bound, keyOf(room)));
      start = Math.max(0, end - limit);
    }
    response.chunk = rooms.slice(start, end);
    const first = response.chunk[0];
    const last = response.chunk.at(-1);
    if (first !== undefined && start > 0)
      response.prev_batch = encodeListToken({ joined: first.num_joined_members, roomId: first.room_id, forwards: false });
    if (last !== undefined && end < rooms.length)
      response.next_batch = encodeListToken({ joined: last.num_joined_members, roomId: last.room_id, forwards: true });
    return response;
  }

  async remotePublicRooms(server: string, query: RemotePublicRoomsQuery): Promise<RemotePublicRoomsResponse> {
    if (server === this.core.serverName) throw new Error('remotePublicRooms is for other servers');
    if (!this.remote) throw Errors.notFound(`The room directory of ${server} is not available from this server`);
    return this.remote.publicRooms(server, query);
  }

  /** Published rooms that may be listed and match the search, largest first (then by room id, descending, as Synapse). */
  private async listedRooms(query: PublicRoomsQuery): Promise<PublicRoomsChunk[]> {
    const term = query.genericSearchTerm?.toLowerCase();
    const entries: PublicRoomsChunk[] = [];
    for (const room of await this.core.stores.events.listPublicRooms()) {
      const entry = publicRoomEntry(room.room_id, await this.core.roomState.currentState(room.room_id));
      if (entry.num_joined_members === 0) continue;
      if (!entry.world_readable && !LISTED_JOIN_RULES.has(entry.join_rule ?? 'public')) continue;
      if (
        term !== undefined &&
        term !== '' &&
        ![entry.name, entry.topic, entry.canonical_alias].some((v) => v?.toLowerCase().includes(term))
      )
        continue;
      if (query.roomTypes !== undefined && !query.roomTypes.includes(entry.room_type ?? null)) continue;
      entries.push(entry);
    }
    return entries.sort(
      (a, b) => b.num_joined_members - a.num_joined_members || (a.room_id < b.room_id ? 1 : a.room_id > b.room_id ? -1 : 0),
    );
  }

  /**
   * Synapse's `check_can_change_room_list`: server admins, and joined members who could send
   * `m.room.canonical_alias` (moderators, by default).
   */
  private async canEditDirectory(requester: DirectoryRequester, roomId: string): Promise<boolean> {
    if (await this.isAdmin(requester.userId)) return true;
    const version = await this.core.roomState.roomVersion(roomId);
    if ((await this.core.roomState.membership(roomId, requester.userId)) !== 'join') {
      throw Errors.forbidden(`User ${requester.userId} not in room ${roomId}`);
    }
    const levels = powerLevelsFromState(roomEvents(await this.core.roomState.currentState(roomId)), version);
    return levels.userLevel(requester.userId) >= levels.eventLevel('m.room.canonical_alias', true);
  }

  /**
   * When a deleted alias is the room's canonical alias or one of its alternatives, the canonical
   * alias event is rewritten without it (Synapse does the same). The alias is gone either way: a
   * user who may not send the event still gets their deletion (directory.yaml recommends it).
   */
  private async dropFromCanonicalAlias(userId: string, roomId: string, alias: string): Promise<void> {
    const current = await this.core.roomState.currentStateEvent(roomId, 'm.room.canonical_alias', '');
    if (current === undefined) return;
    const content = { ...current.event.content };
    let changed = false;
    if (content.alias === alias) {
      delete content.alias;
      changed = true;
    }
    const alternatives = content.alt_aliases;
    if (Array.isArray(alternatives) && alternatives.includes(alias)) {
      const kept = alternatives.filter((a) => a !== alias);
      if (kept.length > 0) content.alt_aliases = kept;
      else delete content.alt_aliases;
      changed = true;
    }
    if (!changed) return;
    try {
      await this.core.eventsWriter.sendEvent(roomId, { type: 'm.room.canonical_alias', stateKey: '', sender: userId, content });
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      this.core.log.info({ roomId, alias, err: err.message }, 'alias deleted; canonical alias event left unchanged');
    }
  }

  private parseAlias(alias: string): { localpart: string; serverName: string } {
    const parsed = parseRoomAlias(alias);
    if (parsed === undefined) throw Errors.invalidParam('Room alias invalid');
    return parsed;
  }

  private isLocal(alias: string): boolean {
    return serverNameOf(alias) === this.core.serverName;
  }

  private async isAdmin(userId: string): Promise<boolean> {
    return (await this.core.stores.users.getUser(userId))?.is_admin === 1;
  }
}

/** A room's entry in the published list, from its current state. */
export function publicRoomEntry(roomId: string, state: RoomState): PublicRoomsChunk {
  const content = (type: string) => state.get(makeStateKey(type, ''))?.event.content;
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  let joined = 0;
  for (const { event } of state.values()) if (event.type === 'm.room.member' && event.content.membership === 'join') joined += 1;
  const entry: PublicRoomsChunk = {
    room_id: roomId,
    num_joined_members: joined,
    world_readable: effectiveHistoryVisibility(content('m.room.history_visibility')?.history_visibility) === 'world_readable',
    guest_can_join: content('m.room.guest_access')?.guest_access === 'can_join',
  };
  const name = text(content('m.room.name')?.name);
  if (name !== undefined) entry.name = name;
  const topic = plainTopic(content('m.room.topic'));
  if (topic !== undefined) entry.topic = topic;
  const alias = text(content('m.room.canonical_alias')?.alias);
  if (alias !== undefined) entry.canonical_alias = alias;
  const joinRule = text(content('m.room.join_rules')?.join_rule);
  if (joinRule !== undefined) entry.join_rule = joinRule;
  const roomType = text(content('m.room.create')?.type);
  if (roomType !== undefined) entry.room_type = roomType;
  const avatar = text(content('m.room.avatar')?.url);
  if (avatar !== undefined) entry.avatar_url = avatar;
  return entry;
}

/** The plain-text topic: `topic`, or the `text/plain` representation of `m.topic` (public_rooms_chunk.yaml). */
function plainTopic(content: JsonObject | undefined): string | undefined {
  if (content === undefined) return undefined;
  if (typeof content.topic === 'string' && content.topic !== '') return content.topic;
  const block = content['m.topic'];
  const representations = isJsonObject(block) ? block['m.text'] : undefined;
  if (!Array.isArray(representations)) return undefined;
  for (const r of representations) {
    if (isJsonObject(r) && (r.mimetype === undefined || r.mimetype === 'text/plain') && typeof r.body === 'string') return r.body;
  }
  return undefined;
}

function roomEvents(state: RoomState): Map<StateKey, RoomEvent> {
  const events = new Map<StateKey, RoomEvent>();
  for (const [key, stored] of state) events.set(key, stored.event);
  return events;
}

// ---- list tokens: the last room of a batch (its size and id) and the direction to go from it ----

interface ListBound extends ListKey {
  readonly forwards: boolean;
}

function encodeListToken(bound: ListBound): string {
  return Buffer.from(JSON.stringify({ m: bound.joined, r: bound.roomId, d: bound.forwards })).toString('base64url');
}

function decodeListToken(token: string): ListBound {
  try {
    // From the client: parsed as any request JSON (no NUL, bounded depth), the room id checked.
    const json: unknown = parseJsonInput(Buffer.from(token, 'base64url').toString('utf8'));
    if (isJsonObject(json) && Number.isSafeInteger(json.m) && isValidRoomId(json.r) && typeof json.d === 'boolean') {
      return { joined: json.m as number, roomId: json.r as string, forwards: json.d };
    }
  } catch {
    // Reported below.
  }
  throw Errors.invalidParam('Invalid pagination token');
}

interface ListKey {
  readonly joined: number;
  readonly roomId: string;
}

function keyOf(entry: PublicRoomsChunk): ListKey {
  return { joined: entry.num_joined_members, roomId: entry.room_id };
}

/** Whether `a` comes after `b` in list order (fewer members, then smaller room id). */
function isAfter(a: ListKey, b: ListKey): boolean {
  return a.joined < b.joined || (a.joined === b.joined && a.roomId < b.roomId);
}

function countWhile<T>(items: readonly T[], predicate: (item: T) => boolean): number {
  let n = 0;
  while (n < items.length && predicate(items[n]!)) n += 1;
  return n;
}
