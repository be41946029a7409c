// The events another server may read from us (spec: server-server API §Retrieving events,
// §Backfilling and retrieving missing events, §Retrieving event authorisation information;
// `events.yaml`, `backfill.yaml`, `event_auth.yaml`), all from the room's event graph. Each read
// first makes the room checks of `ServerAccess` (known room, server ACL, origin in the room), and
// every PDU served goes through its history visibility (redacted where the origin may not see it).

import type { RoomEvent } from '../../core/events.js';
import type { Pdu } from '../../core/events.js';
import type { RoomVersion } from '../../core/room-versions.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { StateIds } from '../kernel/state-groups.js';
import type { ServerAccess } from './server-access.js';

/** get_missing_events' default `limit` (spec) and the most we serve (as Synapse: 20). */
const MISSING_EVENTS_DEFAULT_LIMIT = 10;
const MISSING_EVENTS_MAX_LIMIT = 20;
/** The most events one `/backfill` serves (Synapse caps at 100). */
const BACKFILL_MAX_LIMIT = 100;

export interface MissingEventsBody {
  readonly earliestEvents: readonly string[];
  readonly latestEvents: readonly string[];
  readonly limit: number | undefined;
  readonly minDepth: number | undefined;
}

export class FederationEventReads {
  constructor(
    private readonly core: CoreParts<'roomGraph' | 'serverName' | 'now', 'events'>,
    private readonly access: ServerAccess,
  ) {}

  /** A transaction envelope as the spec's PDU answers have it. */
  private envelope(pdus: Pdu[]): { origin: string; origin_server_ts: number; pdus: Pdu[] } {
    return { origin: this.core.serverName, origin_server_ts: this.core.now(), pdus };
  }

  /** `GET /event/{eventId}`: the one event, if its room lets the origin read it. */
  async event(origin: string, eventId: string): Promise<object> {
    const row = (await this.core.roomGraph.store.get([eventId])).get(eventId);
    // Rejected events are not served, as if unknown.
    if (!row || row.status === 'rejected') throw Errors.notFound(`Could not find event ${eventId}`);
    const version = await this.access.requireServerInRoom(origin, row.room_id);
    const known = await this.core.roomGraph.event(row.room_id, version, eventId);
    if (!known) throw Errors.notFound(`Could not find event ${eventId}`);
    return this.envelope(await this.access.pdusFor(origin, row.room_id, version, [known.event]));
  }

  /** The state before an event (`/state_ids`, `/state`); 404 when we do not know it. */
  private async stateBefore(origin: string, roomId: string, eventId: string): Promise<{ version: RoomVersion; state: StateIds }> {
    const version = await this.access.requireServerInRoom(origin, roomId);
    const known = await this.core.roomGraph.event(roomId, version, eventId);
    if (!known || known.row.status === 'rejected') throw Errors.notFound(`Could not find event ${eventId}`);
    const state = await this.core.roomGraph.stateIdsBefore(roomId, version, eventId);
    if (!state) throw Errors.notFound(`The state at ${eventId} is not known here`);
    return { version, state };
  }

  /** `GET /state_ids/{roomId}?event_id=` */
  async stateIds(origin: string, roomId: string, eventId: string): Promise<{ pdu_ids: string[]; auth_chain_ids: string[] }> {
    const { version, state } = await this.stateBefore(origin, roomId, eventId);
    const pduIds = [...state.values()];
    const chain = await this.core.roomGraph.authChainIds(roomId, version, pduIds);
    return { pdu_ids: pduIds, auth_chain_ids: [...chain] };
  }

  /** `GET /state/{roomId}?event_id=` */
  async state(origin: string, roomId: string, eventId: string): Promise<{ pdus: Pdu[]; auth_chain: Pdu[] }> {
    const { version, state } = await this.stateBefore(origin, roomId, eventId);
    const pduIds = [...state.values()];
    const chainIds = await this.core.roomGraph.authChainIds(roomId, version, pduIds);
    const [pdus, chain] = await Promise.all([this.load(roomId, version, pduIds), this.load(roomId, version, [...chainIds])]);
    // State events are the room's structure; their content is served as is (as Synapse does).
    return { pdus: pdus.map((e) => e.pdu), auth_chain: chain.map((e) => e.pdu) };
  }

  /** `GET /event_auth/{roomId}/{eventId}` */
  async eventAuth(origin: string, roomId: string, eventId: string): Promise<{ auth_chain: Pdu[] }> {
    const version = await this.access.requireServerInRoom(origin, roomId);
    const known = await this.core.roomGraph.event(roomId, version, eventId);
    if (!known) throw Errors.notFound(`Could not find event ${eventId}`);
    const chainIds = await this.core.roomGraph.authChainIds(roomId, version, [eventId]);
    return { auth_chain: (await this.load(roomId, version, [...chainIds])).map((e) => e.pdu) };
  }

  /** `GET /backfill/{roomId}?v=&limit=` */
  async backfill(origin: string, roomId: string, from: readonly string[], limit: number): Promise<object> {
    const version = await this.access.requireServerInRoom(origin, roomId);
    const events = await this.core.roomGraph.backfill(roomId, version, from, Math.min(limit, BACKFILL_MAX_LIMIT));
    return this.envelope(await this.access.pdusFor(origin, roomId, version, events));
  }

  /** `POST /get_missing_events/{roomId}` */
  async missingEvents(origin: string, roomId: string, body: MissingEventsBody): Promise<{ events: Pdu[] }> {
    const version = await this.access.requireServerInRoom(origin, roomId);
    const limit = Math.max(0, Math.min(body.limit ?? MISSING_EVENTS_DEFAULT_LIMIT, MISSING_EVENTS_MAX_LIMIT));
    const events = await this.core.roomGraph.missingEvents(roomId, version, {
      earliest: body.earliestEvents,
      latest: body.latestEvents,
      limit,
      ...(body.minDepth === undefined ? {} : { minDepth: body.minDepth }),
    });
    return { events: await this.access.pdusFor(origin, roomId, version, events) };
  }

  /** `GET /timestamp_to_event/{roomId}?ts=&dir=`: the closest event of our timeline. */
  async timestampToEvent(
    origin: string,
    roomId: string,
    ts: number,
    dir: 'f' | 'b',
  ): Promise<{ event_id: string; origin_server_ts: number }> {
    await this.access.requireServerInRoom(origin, roomId);
    const row = await this.core.stores.events.eventNearTimestamp(roomId, ts, dir);
    if (!row) throw Errors.notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
    return { event_id: row.event_id, origin_server_ts: Number(row.origin_server_ts) };
  }

  /** Events of the room by id, those we hold (rejected ones too: an auth chain may cite them). */
  private async load(roomId: string, version: RoomVersion, ids: readonly string[]): Promise<RoomEvent[]> {
    const found = await this.core.roomGraph.events(roomId, version, ids);
    return ids.map((id) => found.get(id)?.event).filter((e): e is RoomEvent => e !== undefined);
  }
}
