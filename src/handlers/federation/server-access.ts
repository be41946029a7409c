// What another server may ask of a room (spec: server-server API §Server Access Control Lists,
// §Retrieving events; Synapse's `filter_events_for_server`):
//
// - the room's `m.room.server_acl` must allow the server (else 403 M_FORBIDDEN);
// - the server must be in the room: a user of it joined in the room's current state (else 403);
// - each event it gets is judged by the history visibility at that event: `world_readable` and
//   `shared` history is visible to any server in the room; `invited` history to a server one of
//   whose users was invited or joined at the event; `joined` history to a server one of whose users
//   was joined at the event. Anything else is served redacted (the graph needs the event's shape,
//   not its content), as Synapse serves it. An event redacted in the room is served redacted too.

import { splitStateKey, stateKey as makeStateKey, type Pdu, type RoomEvent } from '../../core/events.js';
import { redactEvent } from '../../core/redaction.js';
import type { RoomVersion } from '../../core/room-versions.js';
import { serverAclAllows } from '../../core/server-acl.js';
import { serverNameOf } from '../../core/identifiers.js';
import { historyVisibilityOf } from '../../core/visibility.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { StateIds } from '../kernel/state-groups.js';

const HISTORY_VISIBILITY = makeStateKey('m.room.history_visibility', '');

export class ServerAccess {
  constructor(private readonly core: CoreParts<'roomState' | 'roomGraph' | 'serverName', 'events'>) {}

  /** Whether the room's current server ACL lets `origin` in (true for a room we do not know). */
  async aclAllows(origin: string, roomId: string): Promise<boolean> {
    if (origin === this.core.serverName) return true;
    const acl = await this.core.roomState.currentStateEvent(roomId, 'm.room.server_acl', '');
    return serverAclAllows(acl?.event.content, origin);
  }

  /** 403 M_FORBIDDEN unless the room's server ACL lets `origin` in. */
  async requireAclAllows(origin: string, roomId: string): Promise<void> {
    if (!(await this.aclAllows(origin, roomId))) throw Errors.forbidden(`Server ${origin} is banned from room ${roomId} by its server ACL`);
  }

  /** The room's version; 404 for a room this server does not know. */
  roomVersion(roomId: string): Promise<RoomVersion> {
    return this.core.roomState.roomVersion(roomId);
  }

  /** Whether a user of `origin` is joined to the room now. */
  async hostInRoom(origin: string, roomId: string): Promise<boolean> {
    for (const [key, stored] of await this.core.roomState.currentState(roomId)) {
      if (!key.startsWith('m.room.member\u0000')) continue;
      const { event } = stored;
      if (event.content.membership === 'join' && event.stateKey !== undefined && serverNameOf(event.stateKey) === origin) return true;
    }
    return false;
  }

  /**
   * The checks every room-scoped read makes: the room is known (404), the ACL lets `origin` in and
   * `origin` is in the room (403). Answers the room's version.
   */
  async requireServerInRoom(origin: string, roomId: string): Promise<RoomVersion> {
    const version = await this.roomVersion(roomId);
    await this.requireAclAllows(origin, roomId);
    if (!(await this.hostInRoom(origin, roomId))) throw Errors.forbidden(`Host ${origin} is not in room ${roomId}`);
    return version;
  }

  /**
   * The PDUs of `events` as `origin` may see them: whole when the history visibility at each lets
   * it, redacted otherwise (and redacted when the event was redacted in the room).
   */
  async pdusFor(origin: string, roomId: string, version: RoomVersion, events: readonly RoomEvent[]): Promise<Pdu[]> {
    const ids = events.map((e) => e.eventId);
    const [rows, redactions] = await Promise.all([this.core.roomGraph.store.get(ids), this.core.stores.events.redactionsOf(ids)]);
    const verdicts = new Map<number | string, Promise<boolean>>();
    const out: Pdu[] = [];
    for (const event of events) {
      const row = rows.get(event.eventId);
      // The verdict depends only on the state after the event: shared by events of one state group.
      const cacheKey = row?.state_group ?? (row?.stream_ordering === null || row === undefined ? event.eventId : `p${row.stream_ordering}`);
      let verdict = verdicts.get(cacheKey);
      if (!verdict) {
        verdict = row ? this.visibleAfter(origin, roomId, version, row) : Promise.resolve(false);
        verdicts.set(cacheKey, verdict);
      }
      const visible = (await verdict) && !redactions.has(event.eventId);
      out.push(visible ? event.pdu : redactEvent(event.pdu, version));
    }
    return out;
  }

  /** Whether `origin` may see an event whose graph row is `row`, by the state after it. */
  private async visibleAfter(
    origin: string,
    roomId: string,
    version: RoomVersion,
    row: { room_id: string; state_group: number | null; stream_ordering: number | null },
  ): Promise<boolean> {
    const state = await this.core.roomGraph.stateGroups.stateAfterEvent(row).catch(() => undefined);
    // An outlier (no state known): only what the state it is part of says; serve it redacted.
    if (!state) return false;
    return this.visibleIn(origin, roomId, version, state);
  }

  private async visibleIn(origin: string, roomId: string, version: RoomVersion, state: StateIds): Promise<boolean> {
    const wanted: string[] = [];
    const visibilityId = state.get(HISTORY_VISIBILITY);
    if (visibilityId) wanted.push(visibilityId);
    const memberIds: string[] = [];
    for (const [key, eventId] of state) {
      if (!key.startsWith('m.room.member\u0000')) continue;
      const [, userId] = splitStateKey(key);
      if (serverNameOf(userId) === origin) memberIds.push(eventId);
    }
    const loaded = await this.core.roomGraph.events(roomId, version, [...wanted, ...memberIds]);
    const visibility = historyVisibilityOf(visibilityId ? loaded.get(visibilityId)?.event.content : undefined);
    if (visibility === 'world_readable' || visibility === 'shared') return true;
    for (const id of memberIds) {
      const membership = loaded.get(id)?.event.content.membership;
      if (membership === 'join') return true;
      if (membership === 'invite' && visibility === 'invited') return true;
    }
    return false;
  }
}
