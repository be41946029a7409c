// The per-room context the events writer keeps while it writes a room — current state, forward
// extremities, the events staged ahead of the database — and what persisting one event changes in
// it (`GraphWrite`). Shared by the events writer and the intake of events from other servers
// (federation/pdu-intake.ts), which stage writes into the same context.

import type { RoomEvent, StateKey } from '../../core/events.js';
import type { RoomVersion } from '../../core/room-versions.js';
import type { GraphStatus } from '../../storage/event-graph-store.js';
import type { PlannedStateGroup } from './state-groups.js';

export interface PersistedEvent {
  eventId: string;
  streamOrdering: number;
}

/** A forward extremity: an accepted event of the timeline that no accepted event follows yet. */
export interface Extremity {
  readonly event: RoomEvent;
  /** The state group after it; undefined for an event written before schema 0051. */
  readonly group: number | undefined;
  /** Its stream position (for the state of an event without a group). */
  readonly position: number | undefined;
}

/** What the intake knows of an event it staged (ahead of the database). */
export interface KnownEvent {
  readonly event: RoomEvent;
  readonly status: GraphStatus;
  readonly stateGroup: number | undefined;
}

/** How many staged events a room context remembers for the intake. */
const KNOWN_EVENTS_PER_ROOM = 512;

/** Remembers an event the intake staged in the room's context (bounded, oldest forgotten). */
export function rememberKnown(room: RoomContext, known: KnownEvent): void {
  room.known.delete(known.event.eventId);
  room.known.set(known.event.eventId, known);
  if (room.known.size > KNOWN_EVENTS_PER_ROOM) room.known.delete(room.known.keys().next().value!);
}

export interface RoomContext {
  readonly roomId: string;
  readonly version: RoomVersion;
  /**
   * Current state events by (type, state_key) — the state resolved across the forward
   * extremities — including events still being committed. Replaced, never mutated, when state
   * changes, so an event's "state before" stays a stable snapshot.
   */
  state: Map<StateKey, RoomEvent>;
  /** A state group whose state is `state`, when there is one (the only extremity's). */
  stateGroup: number | undefined;
  /** The forward extremities, the newest last. */
  extremities: Extremity[];
  /**
   * With more than `MAX_PREV_EVENTS` extremities, what a local event follows: the deepest ten and
   * the state resolved across them. Dropped whenever the extremities change.
   */
  sendBase: { prevs: Extremity[]; state: Map<StateKey, RoomEvent> } | undefined;
  /** Events the intake staged or fetched recently, found here before they are committed. */
  readonly known: Map<string, KnownEvent>;
  /** The last staged write of the room: the next one may only commit if this one did. */
  lastWrite: StagedWrite | undefined;
  /** Writes staged but not yet committed (the context may not be evicted meanwhile). */
  inFlight: number;
}

/**
 * What persisting an event writes besides the event itself, and how the room's context moves.
 * Local events get theirs from `planLocal`; the intake computes them for received events.
 */
export interface GraphWrite {
  /**
   * `timeline`: in `events` at a stream position; `backfilled`: in `events` at `position`, below
   * the room's history; anything else is stored in the graph only.
   */
  readonly status: GraphStatus;
  /** A backfilled event's (negative) position, reserved by the writer. */
  readonly position?: number;
  readonly rejectedReason?: string;
  /** The state group after the event (for a rejected event, before it); undefined for outliers. */
  readonly stateGroup: number | undefined;
  /** A new group to insert with the event. */
  readonly newGroup?: PlannedStateGroup;
  /** Forward extremities removed and added. */
  readonly extremities?: { readonly remove: readonly string[]; readonly add: readonly string[] };
  /** Backward extremities (events we lack the history before) added and removed. */
  readonly backward?: { readonly add: readonly string[]; readonly remove: readonly string[] };
  /** The room's current state after the event, when the event changes it or the extremities. */
  readonly current?: CurrentState;
  /**
   * The current-state changes the event's bus row announces, when they are more than `current`'s
   * (a room joined through another server: its whole state arrives with the join).
   */
  readonly announcedChanges?: ReadonlyArray<readonly [StateKey, RoomEvent | undefined]>;
}

/** The room's current state after an event, and the keys that changed at its position. */
export interface CurrentState {
  readonly state: Map<StateKey, RoomEvent>;
  readonly group: number | undefined;
  readonly extremities: Extremity[];
  /** Keys whose current event changed (`undefined`: the key left the state). */
  readonly changes: ReadonlyArray<readonly [StateKey, RoomEvent | undefined]>;
}

export interface StageItem {
  readonly event: RoomEvent;
  /** Computed for a local event at staging time when absent. */
  readonly write?: GraphWrite;
}

export interface StagedWrite {
  failed: boolean;
  settled: Promise<unknown>;
}
