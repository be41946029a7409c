// State groups: the state after each event of a room's graph (spec: server-server API §Room State
// Resolution needs the state at any event of a forked DAG), kept so that storage grows with state
// changes, never with events × state size.
//
// A message event shares the group of the state before it; a state event (or a merge of branches
// whose resolved state differs) makes a new group. Groups are stored as *skip-deltas*: the group
// numbered `seq` along its chain of parents stores only the changes since its ancestor numbered
// `seq & (seq - 1)` (the lowest set bit cleared); `seq` 0 is a full snapshot. So:
// - a group is rebuilt from at most log2(seq) + 1 stored deltas (one recursive query);
// - a new group's delta is the union of the deltas on its parent's chain above that ancestor plus
//   its own change, at most lowbit(seq) entries — no materialisation needed to write it;
// - n state changes cost about n · log2(n) / 2 entries, whatever the size of the state. (A fixed
//   chain of 100 deltas followed by a full snapshot, as Synapse does, costs n + n/100 · |state|:
//   in a room of 50,000 members that is 500 rows per join instead of ~10.)
// The chain is followed through `prev_group`, which always points at the skip ancestor, and every
// ancestor `seq & (seq - 1)` of a child lies on its parent's chain (the parent's `seq` has the same
// high bits and only ones below the child's lowest set bit, which clearing one by one walks down).
//
// Rooms created before schema 0051 have no groups for their old events: their history is a line,
// so the state after the event at position p is `room_state` at p (`stateAfterEvent`).

import { splitStateKey, stateKey as makeStateKey, type StateKey } from '../../core/events.js';
import type { Database } from '../../storage/database.js';
import type { RoomStateStore } from '../../storage/room-state-store.js';
import type { NewStateGroup, StateGroupsStore } from '../../storage/state-groups-store.js';
import { LruCache } from '../../util/lru.js';

/** State as `(type, state_key)` → event id. */
export type StateIds = ReadonlyMap<StateKey, string>;

interface GroupRecord {
  readonly id: number;
  readonly roomId: string;
  readonly prevGroup: number | null;
  readonly seq: number;
  readonly deltaDepth: number;
  /** Changes against `prevGroup` (`null`: the key is removed); the whole state when `seq` is 0. */
  readonly delta: ReadonlyMap<StateKey, string | null>;
}

export interface PlannedStateGroup {
  readonly id: number;
  /** The rows to insert in the transaction of the event the group belongs to. */
  readonly row: NewStateGroup;
}

/** What `stateAfterEvent` needs to know of an event's graph row. */
export interface StateOwner {
  readonly room_id: string;
  readonly state_group: number | null;
  readonly stream_ordering: number | null;
}

/** A chain longer than this can only come from a corrupt database (skip chains are logarithmic). */
const MAX_CHAIN = 128;

export class StateGroupNotFoundError extends Error {}

export class StateGroups {
  private readonly records = new LruCache<number, GroupRecord>(100_000);
  private readonly materialised = new LruCache<number, StateIds>(256);
  private next = 0;
  private end = 0;
  private refilling: Promise<void> | undefined;

  constructor(
    private readonly store: StateGroupsStore,
    private readonly db: Pick<Database, 'dialect'>,
    private readonly roomState: Pick<RoomStateStore, 'stateAt'>,
  ) {}

  /** The state of a group. */
  async stateOf(groupId: number): Promise<StateIds> {
    const cached = this.materialised.get(groupId);
    if (cached) return cached;
    const chain: GroupRecord[] = [];
    let base: StateIds | undefined;
    let current: number | null = groupId;
    while (current !== null) {
      if (chain.length > MAX_CHAIN) throw new StateGroupNotFoundError(`state group ${groupId}: the delta chain does not end`);
      const done = current === groupId ? undefined : this.materialised.get(current);
      if (done) {
        base = done;
        break;
      }
      const record = await this.record(current);
      chain.push(record);
      current = record.prevGroup;
    }
    const state = new Map(base);
    for (let i = chain.length - 1; i >= 0; i--) {
      for (const [key, eventId] of chain[i]!.delta) {
        if (eventId === null) state.delete(key);
        else state.set(key, eventId);
      }
    }
    this.materialised.set(groupId, state);
    return state;
  }

  /**
   * The state after an event: its group, or for an event written before schema 0051 (a room
   * whose history is a line), `room_state` at its position. Undefined when neither exists (an
   * outlier).
   */
  async stateAfterEvent(owner: StateOwner): Promise<StateIds | undefined> {
    if (owner.state_group !== null) return this.stateOf(owner.state_group);
    if (owner.stream_ordering === null) return undefined;
    const rows = await this.roomState.stateAt(owner.room_id, owner.stream_ordering);
    return new Map(rows.map((r) => [makeStateKey(r.type, r.state_key), r.event_id]));
  }

  /**
   * A new group: the state of `parent` with `changes` applied (`null` removes a key). Stored as a
   * skip-delta against the parent's chain; kept in memory at once, so the room's next event can
   * build on it while this one commits.
   */
  async child(roomId: string, parent: number, changes: ReadonlyMap<StateKey, string | null>): Promise<PlannedStateGroup> {
    const parentRecord = await this.record(parent);
    const seq = parentRecord.seq + 1;
    const baseSeq = seq & (seq - 1);
    const above: GroupRecord[] = [];
    let base = parentRecord;
    while (base.seq > baseSeq && base.prevGroup !== null && above.length <= MAX_CHAIN) {
      above.push(base);
      base = await this.record(base.prevGroup);
    }
    if (base.seq > baseSeq) {
      // Cannot happen with groups written here; should it, the chain is ended by a snapshot.
      return this.snapshot(roomId, applyChanges(await this.stateOf(parent), changes));
    }
    const delta = new Map<StateKey, string | null>();
    for (let i = above.length - 1; i >= 0; i--) for (const [key, eventId] of above[i]!.delta) delta.set(key, eventId);
    for (const [key, eventId] of changes) delta.set(key, eventId);
    return this.plan({ roomId, prevGroup: base.id, seq, deltaDepth: base.deltaDepth + 1, delta });
  }

  /** A new full snapshot (a room's first group, or the state at a gap of the graph). */
  async snapshot(roomId: string, state: StateIds): Promise<PlannedStateGroup> {
    return this.plan({ roomId, prevGroup: null, seq: 0, deltaDepth: 0, delta: new Map(state) });
  }

  /**
   * A group for `state`, built on `parent` when there is one (as a delta of the differences),
   * else a snapshot. Used where state resolution produced the state.
   */
  async forState(roomId: string, state: StateIds, parent: number | undefined): Promise<PlannedStateGroup> {
    if (parent === undefined) return this.snapshot(roomId, state);
    const parentState = await this.stateOf(parent);
    const changes = new Map<StateKey, string | null>();
    for (const [key, eventId] of state) if (parentState.get(key) !== eventId) changes.set(key, eventId);
    for (const key of parentState.keys()) if (!state.has(key)) changes.set(key, null);
    const planned = await this.child(roomId, parent, changes);
    this.materialised.set(planned.id, state);
    return planned;
  }

  private async plan(group: Omit<GroupRecord, 'id'>): Promise<PlannedStateGroup> {
    const id = await this.allocate();
    const record: GroupRecord = { id, ...group };
    this.records.set(id, record);
    const entries: Array<[string, string, string | null]> = [];
    for (const [key, eventId] of group.delta) {
      const [type, stateKey] = splitStateKey(key);
      entries.push([type, stateKey, eventId]);
    }
    return {
      id,
      row: { id, roomId: group.roomId, prevGroup: group.prevGroup, seq: group.seq, deltaDepth: group.deltaDepth, entries },
    };
  }

  private async record(id: number): Promise<GroupRecord> {
    const cached = this.records.get(id);
    if (cached) return cached;
    const { groups, entries } = await this.store.loadChain(id);
    const deltas = new Map<number, Map<StateKey, string | null>>();
    for (const entry of entries) {
      let delta = deltas.get(entry.state_group);
      if (!delta) deltas.set(entry.state_group, (delta = new Map<string, string | null>()));
      delta.set(makeStateKey(entry.type, entry.state_key), entry.event_id);
    }
    for (const group of groups) {
      if (this.records.get(group.id)) continue;
      this.records.set(group.id, {
        id: group.id,
        roomId: group.room_id,
        prevGroup: group.prev_group,
        seq: group.seq,
        deltaDepth: group.delta_depth,
        delta: deltas.get(group.id) ?? new Map(),
      });
    }
    const record = this.records.get(id);
    if (!record) throw new StateGroupNotFoundError(`state group ${id} does not exist`);
    return record;
  }

  /** Group ids: counted in memory on SQLite (one process), blocks of a sequence on PostgreSQL. */
  private async allocate(): Promise<number> {
    while (this.next >= this.end) {
      this.refilling ??= this.refill().finally(() => {
        this.refilling = undefined;
      });
      await this.refilling;
    }
    return this.next++;
  }

  private async refill(): Promise<void> {
    if (this.db.dialect === 'postgres') {
      const { first, count } = await this.store.reserveIdBlock();
      this.next = first;
      this.end = first + count;
    } else if (this.end === 0) {
      this.next = (await this.store.maxId()) + 1;
      this.end = Number.MAX_SAFE_INTEGER;
    }
  }
}

/** `state` with `changes` applied (`null` removes a key). */
export function applyChanges(state: StateIds, changes: ReadonlyMap<StateKey, string | null>): Map<StateKey, string> {
  const next = new Map(state);
  for (const [key, eventId] of changes) {
    if (eventId === null) next.delete(key);
    else next.set(key, eventId);
  }
  return next;
}
