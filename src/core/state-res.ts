// State resolution: the state of a room where several branches of its DAG meet.
//
// Three algorithms, chosen by the room version:
// - v1 (room v1, `S:content/rooms/v1.md`): passes over power levels, join rules, members, then the
//   rest, ordered by depth and sha1(event id). Known to reset state; kept for old rooms.
// - v2 (rooms v2–v11, `S:content/rooms/fragments/v2-state-res.md`).
// - v2.1 (room v12, MSC4297, inline in `S:content/rooms/v12.md`): v2, except that the power events
//   are replayed from an empty map and the full conflicted set includes the conflicted state
//   subgraph.
//
// Everything here is pure and synchronous: callers load the events first. Where the spec leaves a
// choice, we make the one Synapse makes, because state resolution only works if servers agree:
// - the auth difference counts each state set's own events as part of its auth chain;
// - `m.room.create` is a power event (as in Synapse and Ruma; the spec lists only power levels,
//   join rules and kicks/bans, but the create event can only be in the full conflicted set when
//   something is badly wrong, and then it should be replayed first);
// - the graph sorted by reverse topological power ordering is the power events plus the full
//   conflicted set events reachable from them through `auth_events` links whose both ends are in
//   the full conflicted set.
//
// Rejected events: events rejected against their own auth events should never reach this code (a
// server never puts them in state). An event rejected only against the state before it is replayed
// like any other, as the spec says (Synapse skips such events, a deviation it documents as a TODO);
// rejected events are never used as auth events (`isRejected`).
//
// Missing events: an id the `EventLookup` does not know is skipped, never an exception. A
// conflicted candidate that cannot be loaded takes no part (so the key resolves among the
// candidates that can, or is absent if none can); an auth event that cannot be loaded is as if it
// were not listed. `onMissingEvent` reports each such id once, so callers can fetch and retry.
//
// Malformed input (a state set mapping a key to an event of another key or to a non-state event,
// events of different rooms, a cycle in auth events) raises `StateResolutionError`, and nothing
// else is thrown on purpose.

import { createHash } from 'node:crypto';
import { AuthGraph, type AuthChainIndex } from './auth-chain.js';
import { authEventKeysFor } from './auth-events.js';
import { checkEventAuth } from './auth-rules.js';
import { authEventIdsWithCreate, stateKey, type EventLookup, type RoomEvent, type StateKey, type StateMap } from './events.js';
import { userPowerLevel } from './power-levels.js';
import type { RoomVersion } from './room-versions.js';

export interface ResolveStateOptions {
  /**
   * Answers auth-difference and conflicted-subgraph queries. Defaults to a fresh `AuthGraph` over
   * `events`; pass a long-lived one (or a storage index) to reuse work across resolutions.
   */
  authChains?: AuthChainIndex;
  /**
   * Whether an event was rejected. Rejected events are never used as auth events during the
   * iterative auth checks (the spec's rule); an event in the full conflicted set is still
   * re-checked even if it was rejected against the state before it, as the spec says.
   */
  isRejected?: (eventId: string) => boolean;
  /** Called once for each event id that was needed but not known to `events`. */
  onMissingEvent?: (eventId: string) => void;
  /** Called with the sizes of the work done (v2 and v2.1 only), for logs and benchmarks. */
  onStats?: (stats: StateResolutionStats) => void;
}

export interface StateResolutionStats {
  conflictedKeys: number;
  /** Events in the full conflicted set that could be loaded. */
  fullConflictedSet: number;
  /** Events replayed in reverse topological power order (power events and their ancestors). */
  powerEvents: number;
  /** Events replayed in mainline order. */
  otherEvents: number;
}

export type StateResolutionErrorCode = 'malformed-state-set' | 'mixed-rooms' | 'auth-cycle';

export class StateResolutionError extends Error {
  constructor(
    readonly code: StateResolutionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StateResolutionError';
  }
}

/**
 * Resolves `stateSets` (each a map from `(type, state_key)` to event id) into one state map, with
 * the algorithm of `version`. An empty list resolves to empty state; a single set to a copy of it.
 */
export function resolveState(
  version: RoomVersion,
  stateSets: ReadonlyArray<StateMap<string>>,
  events: EventLookup,
  options: ResolveStateOptions = {},
): Map<StateKey, string> {
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const ctx = new Context(version, events, options);
  return version.stateResolution === 'v1'
    ? resolveV1(ctx, stateSets)
    : resolveV2(ctx, stateSets, options.authChains ?? new AuthGraph(events, version));
}

// ---------------------------------------------------------------------------------------------
// Shared machinery

class Context {
  private readonly missing = new Set<string>();
  private readonly powerCache = new Map<string, number>();

  constructor(
    readonly version: RoomVersion,
    private readonly events: EventLookup,
    private readonly options: ResolveStateOptions,
  ) {}

  get(eventId: string): RoomEvent | undefined {
    const event = this.events.get(eventId);
    if (event === undefined && !this.missing.has(eventId)) {
      this.missing.add(eventId);
      this.options.onMissingEvent?.(eventId);
    }
    return event;
  }

  get stats(): ((stats: StateResolutionStats) => void) | undefined {
    return this.options.onStats;
  }

  rejected(eventId: string): boolean {
    return this.options.isRejected?.(eventId) ?? false;
  }

  authEventIds(event: RoomEvent): readonly string[] {
    return authEventIdsWithCreate(event, this.version.roomIdFromCreateEvent);
  }

  /** The event's own auth events (the implicit v12 create event included), keyed by state key. */
  ownAuthState(event: RoomEvent, skipRejected: boolean): Map<StateKey, RoomEvent> {
    const state = new Map<StateKey, RoomEvent>();
    for (const id of this.authEventIds(event)) {
      const authEvent = this.get(id);
      if (authEvent === undefined || authEvent.stateKey === undefined) continue;
      if (skipRejected && this.rejected(id)) continue;
      state.set(stateKey(authEvent.type, authEvent.stateKey), authEvent);
    }
    return state;
  }

  /** The sender's power level according to the event's own auth events, cached per event. */
  senderPower(event: RoomEvent): number {
    let power = this.powerCache.get(event.eventId);
    if (power === undefined) {
      power = userPowerLevel(event.sender, this.ownAuthState(event, false), this.version);
      this.powerCache.set(event.eventId, power);
    }
    return power;
  }

  allowed(event: RoomEvent, authState: StateMap<RoomEvent>): boolean {
    try {
      return checkEventAuth(event, authState, this.version).allowed;
    } catch {
      // The auth rules are meant to answer, not throw; if malformed content makes them throw
      // anyway, the event is not allowed, which is what a rejection means here.
      return false;
    }
  }

  authKeys(event: RoomEvent): readonly StateKey[] {
    try {
      return authEventKeysFor(event.type, event.stateKey, event.sender, event.content, this.version);
    } catch {
      return [];
    }
  }
}

function keyOf(event: RoomEvent): StateKey {
  return stateKey(event.type, event.stateKey!);
}

/**
 * Compares strings by Unicode code point, as the spec (and Python) do. JavaScript's `<` compares
 * UTF-16 code units, which disagrees only when a surrogate meets a code unit in U+E000–U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (astral code points) belong above U+E000–U+FFFF.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** A binary min-heap of small integers under a comparator. */
class Heap {
  private readonly items: number[] = [];
  constructor(private readonly less: (a: number, b: number) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: number): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(item, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(items[right]!, items[left]!) ? right : left;
      if (!this.less(items[child]!, last)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

/**
 * Kahn's algorithm, parents first: `edges[i]` lists the nodes node `i` depends on (its auth events),
 * and among the nodes whose dependencies are all out, the smallest under `less` goes next. Returns
 * the order, or `undefined` if the graph has a cycle.
 */
export function lexicographicalTopologicalSort(
  edges: ReadonlyArray<readonly number[]>,
  less: (a: number, b: number) => boolean,
): number[] | undefined {
  const n = edges.length;
  const pending = new Int32Array(n);
  const dependents: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    for (const j of edges[i]!) {
      pending[i]!++;
      dependents[j]!.push(i);
    }
  }
  const ready = new Heap(less);
  for (let i = 0; i < n; i++) if (pending[i] === 0) ready.push(i);
  const order: number[] = [];
  while (ready.size > 0) {
    const i = ready.pop()!;
    order.push(i);
    for (const d of dependents[i]!) if (--pending[d]! === 0) ready.push(d);
  }
  return order.length === n ? order : undefined;
}

// ---------------------------------------------------------------------------------------------
// State resolution v2 and v2.1

function isPowerEvent(event: RoomEvent): boolean {
  if (event.stateKey === undefined) return false;
  switch (event.type) {
    case 'm.room.power_levels':
    case 'm.room.join_rules':
    case 'm.room.create':
      return event.stateKey === '';
    case 'm.room.member': {
      const membership = event.content['membership'];
      return (membership === 'leave' || membership === 'ban') && event.sender !== event.stateKey;
    }
    default:
      return false;
  }
}

/** Splits state sets into the unconflicted map and the conflicted candidates per key. */
export function separateStateSets(stateSets: ReadonlyArray<StateMap<string>>): {
  unconflicted: Map<StateKey, string>;
  conflicted: Map<StateKey, Set<string>>;
} {
  const unconflicted = new Map<StateKey, string>();
  const conflicted = new Map<StateKey, Set<string>>();
  const candidates = (key: StateKey) => {
    const ids = new Set<string>();
    for (const set of stateSets) {
      const id = set.get(key);
      if (id !== undefined) ids.add(id);
    }
    return ids;
  };
  const [first, ...rest] = stateSets;
  if (first === undefined) return { unconflicted, conflicted };
  for (const [key, id] of first) {
    if (rest.every((set) => set.get(key) === id)) unconflicted.set(key, id);
    else conflicted.set(key, candidates(key));
  }
  // A key missing from some set is conflicted, even if every set that has it agrees.
  for (const set of rest) {
    for (const key of set.keys()) {
      if (!first.has(key) && !conflicted.has(key)) conflicted.set(key, candidates(key));
    }
  }
  return { unconflicted, conflicted };
}

function resolveV2(ctx: Context, stateSets: ReadonlyArray<StateMap<string>>, authChains: AuthChainIndex): Map<StateKey, string> {
  const { unconflicted, conflicted } = separateStateSets(stateSets);
  if (conflicted.size === 0) return unconflicted;

  const conflictedIds = new Set<string>();
  for (const ids of conflicted.values()) for (const id of ids) conflictedIds.add(id);

  const fullConflictedIds = new Set(conflictedIds);
  for (const id of authChains.authChainDifference(stateSets.map((set) => set.values()))) {
    fullConflictedIds.add(id);
  }
  if (ctx.version.stateResolution === 'v2.1') {
    for (const id of authChains.conflictedSubgraph(conflictedIds)) fullConflictedIds.add(id);
  }

  const full = loadFullConflictedSet(ctx, conflicted, fullConflictedIds);

  // Steps 1–2: the power events and their conflicted ancestors, replayed in power order.
  const sortedPowerEvents = reverseTopologicalPowerSort(ctx, full);
  const base = ctx.version.stateResolution === 'v2.1' ? new Map<StateKey, string>() : new Map(unconflicted);
  const resolved = iterativeAuthChecks(ctx, sortedPowerEvents, base);

  // Steps 3–4: everything else, in mainline order of the resolved power levels.
  const replayed = new Set(sortedPowerEvents.map((event) => event.eventId));
  const leftover = [...full.values()].filter((event) => !replayed.has(event.eventId));
  const sortedLeftover = mainlineSort(ctx, leftover, resolved.get(stateKey('m.room.power_levels', '')));
  iterativeAuthChecks(ctx, sortedLeftover, resolved);

  ctx.stats?.({
    conflictedKeys: conflicted.size,
    fullConflictedSet: full.size,
    powerEvents: sortedPowerEvents.length,
    otherEvents: sortedLeftover.length,
  });

  // Step 5: unconflicted state always wins.
  for (const [key, id] of unconflicted) resolved.set(key, id);
  return resolved;
}

/** Loads the full conflicted set, dropping unknown and non-state events, checking the input. */
function loadFullConflictedSet(
  ctx: Context,
  conflicted: ReadonlyMap<StateKey, ReadonlySet<string>>,
  ids: ReadonlySet<string>,
): Map<string, RoomEvent> {
  for (const [key, candidates] of conflicted) {
    for (const id of candidates) {
      const event = ctx.get(id);
      if (event !== undefined) checkStateSetEntry(key, id, event);
    }
  }
  const full = new Map<string, RoomEvent>();
  let roomId: string | undefined;
  for (const id of ids) {
    const event = ctx.get(id);
    if (event === undefined || event.stateKey === undefined) continue;
    roomId ??= event.roomId;
    if (event.roomId !== roomId) {
      throw new StateResolutionError('mixed-rooms', `state resolution mixes rooms: ${id} is in ${event.roomId}, not ${roomId}`);
    }
    full.set(id, event);
  }
  return full;
}

function checkStateSetEntry(key: StateKey, id: string, event: RoomEvent): void {
  if (event.eventId !== id || event.stateKey === undefined || keyOf(event) !== key) {
    throw new StateResolutionError(
      'malformed-state-set',
      `a state set maps ${JSON.stringify(key)} to ${id}, which is ` +
        (event.stateKey === undefined ? 'not a state event' : `${JSON.stringify(keyOf(event))} (event id ${event.eventId})`),
    );
  }
}

function reverseTopologicalPowerSort(ctx: Context, full: ReadonlyMap<string, RoomEvent>): RoomEvent[] {
  const nodes: RoomEvent[] = [];
  const edges: number[][] = [];
  const local = new Map<string, number>();
  const add = (event: RoomEvent) => {
    let i = local.get(event.eventId);
    if (i === undefined) {
      i = nodes.length;
      local.set(event.eventId, i);
      nodes.push(event);
      edges.push([]);
      stack.push(i);
    }
    return i;
  };
  const stack: number[] = [];
  for (const event of full.values()) if (isPowerEvent(event)) add(event);
  while (stack.length > 0) {
    const i = stack.pop()!;
    const own = edges[i]!;
    for (const authId of ctx.authEventIds(nodes[i]!)) {
      const authEvent = full.get(authId);
      if (authEvent === undefined) continue;
      const j = add(authEvent);
      if (!own.includes(j)) own.push(j);
    }
  }

  const power = nodes.map((event) => ctx.senderPower(event));
  const order = lexicographicalTopologicalSort(edges, (a, b) => {
    const pa = power[a]!;
    const pb = power[b]!;
    if (pa !== pb) return pa > pb;
    const ea = nodes[a]!;
    const eb = nodes[b]!;
    if (ea.originServerTs !== eb.originServerTs) return ea.originServerTs < eb.originServerTs;
    return compareCodePoints(ea.eventId, eb.eventId) < 0;
  });
  if (order === undefined) {
    throw new StateResolutionError('auth-cycle', 'the auth events of the conflicted power events form a cycle');
  }
  return order.map((i) => nodes[i]!);
}

/**
 * Applies each event in turn if the auth rules allow it against the state resolved so far, filling
 * in keys the resolved state lacks from the event's own (non-rejected) auth events.
 */
function iterativeAuthChecks(ctx: Context, events: readonly RoomEvent[], resolved: Map<StateKey, string>): Map<StateKey, string> {
  for (const event of events) {
    const authState = ctx.ownAuthState(event, true);
    for (const key of ctx.authKeys(event)) {
      const id = resolved.get(key);
      if (id === undefined || ctx.rejected(id)) continue;
      const current = ctx.get(id);
      if (current !== undefined) authState.set(key, current);
    }
    if (ctx.allowed(event, authState)) resolved.set(keyOf(event), event.eventId);
  }
  return resolved;
}

const INFINITE_POSITION = Number.POSITIVE_INFINITY;

function mainlineSort(ctx: Context, events: readonly RoomEvent[], powerLevelsId: string | undefined): RoomEvent[] {
  if (events.length === 0) return [];

  // Mainline position of each power-levels event on the mainline: 0 for the resolved one, then
  // 1, 2, … going back through each one's power-levels auth event.
  const position = new Map<string, number>();
  for (let id = powerLevelsId, i = 0; id !== undefined && !position.has(id); i++) {
    position.set(id, i);
    const event = ctx.get(id);
    id = event && powerLevelsAuthEvent(ctx, event);
  }

  // The position of an event is the position of the first mainline event met walking back from
  // its power-levels auth event. Walks share their tails, so every power-levels event met is
  // memoised and each is walked at most once.
  const positionFrom = (startId: string | undefined): number => {
    const path: string[] = [];
    let found = INFINITE_POSITION;
    for (let id = startId; id !== undefined;) {
      const known = position.get(id);
      if (known !== undefined) {
        found = known;
        break;
      }
      if (path.includes(id)) break; // malformed: a power-levels cycle never reaches the mainline
      path.push(id);
      const event = ctx.get(id);
      id = event && powerLevelsAuthEvent(ctx, event);
    }
    for (const id of path) position.set(id, found);
    return found;
  };

  const keyed = events.map((event) => ({ event, position: positionFrom(powerLevelsAuthEvent(ctx, event)) }));
  keyed.sort((a, b) => {
    if (a.position !== b.position) return a.position > b.position ? -1 : 1;
    if (a.event.originServerTs !== b.event.originServerTs) {
      return a.event.originServerTs < b.event.originServerTs ? -1 : 1;
    }
    return compareCodePoints(a.event.eventId, b.event.eventId);
  });
  return keyed.map((entry) => entry.event);
}

/** The id of the first `m.room.power_levels` event among the event's auth events, if any. */
function powerLevelsAuthEvent(ctx: Context, event: RoomEvent): string | undefined {
  for (const id of event.authEventIds) {
    const authEvent = ctx.get(id);
    if (authEvent?.type === 'm.room.power_levels' && authEvent.stateKey === '') return id;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// State resolution v1 (room v1). Follows Synapse's reading of the spec's prose, which is what
// every v1 room on the network was resolved with.

function resolveV1(ctx: Context, stateSets: ReadonlyArray<StateMap<string>>): Map<StateKey, string> {
  // Unlike v2, a key missing from some sets is not a conflict: only differing event ids are.
  const resolved = new Map<StateKey, string>();
  const conflictedIds = new Map<StateKey, Set<string>>();
  for (const set of stateSets) {
    for (const [key, id] of set) {
      const ids = conflictedIds.get(key);
      if (ids !== undefined) ids.add(id);
      else {
        const current = resolved.get(key);
        if (current === undefined) resolved.set(key, id);
        else if (current !== id) {
          conflictedIds.set(key, new Set([current, id]));
          resolved.delete(key);
        }
      }
    }
  }

  const conflicted = new Map<StateKey, RoomEvent[]>();
  for (const [key, ids] of conflictedIds) {
    const events: RoomEvent[] = [];
    for (const id of ids) {
      const event = ctx.get(id);
      if (event === undefined) continue;
      checkStateSetEntry(key, id, event);
      events.push(event);
    }
    if (events.length === 1) resolved.set(key, events[0]!.eventId);
    else if (events.length > 1) conflicted.set(key, events);
  }
  if (conflicted.size === 0) return resolved;

  // The auth state R: the unconflicted events the conflicted events' auth rules can look at.
  const authState = new Map<StateKey, RoomEvent>();
  for (const events of conflicted.values()) {
    for (const event of events) {
      for (const key of ctx.authKeys(event)) {
        if (authState.has(key)) continue;
        const id = resolved.get(key);
        const authEvent = id === undefined ? undefined : ctx.get(id);
        if (authEvent !== undefined) authState.set(key, authEvent);
      }
    }
  }

  const sha1 = new Map<string, string>();
  const hashOf = (id: string) => {
    let hex = sha1.get(id);
    if (hex === undefined) {
      hex = createHash('sha1').update(id, 'utf8').digest('hex');
      sha1.set(id, hex);
    }
    return hex;
  };
  // Highest depth first, then lowest sha1(event id).
  const ordered = (events: readonly RoomEvent[]) =>
    [...events].sort((a, b) => (a.depth !== b.depth ? b.depth - a.depth : hashOf(a.eventId) < hashOf(b.eventId) ? -1 : 1));

  // Power levels, join rules and members: walk from the oldest candidate, moving on while each
  // next one is allowed on top of the previous one; stop at the first that is not.
  const resolveAuthEvents = (events: readonly RoomEvent[]): RoomEvent => {
    const chain = ordered(events).reverse();
    const state = new Map<StateKey, RoomEvent>();
    for (const event of events) {
      for (const key of ctx.authKeys(event)) {
        const authEvent = authState.get(key);
        if (authEvent !== undefined) state.set(key, authEvent);
      }
    }
    let previous = chain[0]!;
    for (const event of chain.slice(1)) {
      state.set(keyOf(previous), previous);
      if (!ctx.allowed(event, state)) return previous;
      previous = event;
    }
    return previous;
  };

  const winners = new Map<StateKey, RoomEvent>();
  const pass = (matches: (key: StateKey) => boolean) => {
    for (const [key, events] of conflicted) {
      if (!winners.has(key) && matches(key)) winners.set(key, resolveAuthEvents(events));
    }
    for (const [key, event] of winners) authState.set(key, event);
  };
  const powerLevelsKey = stateKey('m.room.power_levels', '');
  pass((key) => key === powerLevelsKey);
  pass((key) => key.startsWith('m.room.join_rules\u0000'));
  pass((key) => key.startsWith('m.room.member\u0000'));

  // Everything else: the first candidate, highest depth first, that is allowed in R; if none is,
  // the last (lowest) one.
  for (const [key, events] of conflicted) {
    if (winners.has(key)) continue;
    const candidates = ordered(events);
    winners.set(key, candidates.find((event) => ctx.allowed(event, authState)) ?? candidates.at(-1)!);
  }

  for (const [key, event] of winners) resolved.set(key, event.eventId);
  return resolved;
}
