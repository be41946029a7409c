// Fixtures for state resolution tests and the state-res benchmark.
//
// 1. `buildDag`: a small DAG of named nodes (`CREATE`, `IMA`, `PA`…) with prev edges given as
//    chains (`['END', 'MB', 'MA', 'PA', 'START']` means END → MB → MA → PA → START). Nodes are
//    processed parents first, smallest name first, and each gets the next `origin_server_ts`. The
//    state before a node is the resolution of the states after its prev nodes; its auth events are
//    picked from that state; the state after it adds the node if it is a state event. This is how
//    the worked examples of other implementations' suites are built, so their expected outcomes
//    carry over.
// 2. `generateForkedRoom`: a deterministic synthetic room (seeded PRNG) with long-lived forks full
//    of joins, leaves, kicks, bans, power-level changes, join-rule flips, topics and messages. Every
//    event is checked against the auth rules on its own fork before it is kept, so each fork's state
//    is one a real server could have.

import { authEventKeysFor } from '../../../src/core/auth-events.js';
import { checkEventAuth } from '../../../src/core/auth-rules.js';
import { stateKey, type EventLookup, type RoomEvent, type StateKey } from '../../../src/core/events.js';
import type { JsonObject } from '../../../src/core/json.js';
import type { RoomVersion } from '../../../src/core/room-versions.js';
import { compareCodePoints, lexicographicalTopologicalSort, resolveState } from '../../../src/core/state-res.js';
import { makeEvent } from './events.js';

export const ALICE = '@alice:example.com';
export const BOB = '@bob:example.com';
export const CHARLIE = '@charlie:example.com';
export const EVELYN = '@evelyn:example.com';
export const ZARA = '@zara:example.com';

export class EventMap implements EventLookup {
  readonly map = new Map<string, RoomEvent>();
  get(eventId: string): RoomEvent | undefined {
    return this.map.get(eventId);
  }
  add(event: RoomEvent): RoomEvent {
    this.map.set(event.eventId, event);
    return event;
  }
}

/** `$` + node name. For v12 the create node `CREATE` then gives the room id `!CREATE`. */
export const idOf = (node: string) => `$${node}`;
export const nodeOf = (eventId: string) => eventId.slice(1);

export function roomIdFor(version: RoomVersion): string {
  return version.roomIdFromCreateEvent ? '!CREATE' : '!room:example.com';
}

export interface NodeSpec {
  id: string;
  type: string;
  sender: string;
  /** Omit for a message. */
  stateKey?: string;
  content?: JsonObject;
}

const join = { membership: 'join' };

/** Every DAG scenario starts with these nodes, chained by `INITIAL_CHAIN`. */
export const INITIAL_NODES: readonly NodeSpec[] = [
  { id: 'CREATE', type: 'm.room.create', sender: ALICE, stateKey: '' },
  { id: 'IMA', type: 'm.room.member', sender: ALICE, stateKey: ALICE, content: join },
  { id: 'IPOWER', type: 'm.room.power_levels', sender: ALICE, stateKey: '', content: { users: { [ALICE]: 100 } } },
  { id: 'IJR', type: 'm.room.join_rules', sender: ALICE, stateKey: '', content: { join_rule: 'public' } },
  { id: 'IMB', type: 'm.room.member', sender: BOB, stateKey: BOB, content: join },
  { id: 'IMC', type: 'm.room.member', sender: CHARLIE, stateKey: CHARLIE, content: join },
  { id: 'IMZ', type: 'm.room.member', sender: ZARA, stateKey: ZARA, content: join },
  { id: 'START', type: 'm.room.message', sender: ZARA, content: {} },
  { id: 'END', type: 'm.room.message', sender: ZARA, content: {} },
];
export const INITIAL_CHAIN = ['START', 'IMZ', 'IMC', 'IMB', 'IJR', 'IPOWER', 'IMA', 'CREATE'];

/**
 * Adapts a node to the room version: the create event gets `room_version` (and `creator` before
 * v11); in v12, where creators have infinite power and may not be listed in `users`, the creator is
 * taken out of power-levels `users`.
 */
function contentFor(node: NodeSpec, version: RoomVersion, creator: string): JsonObject {
  const content: JsonObject = structuredClone(node.content ?? {});
  if (node.type === 'm.room.create') {
    content['room_version'] = version.id;
    if (!version.creatorIsCreateSender) content['creator'] = node.sender;
  }
  if (node.type === 'm.room.power_levels' && version.privilegedCreators) {
    const users = content['users'];
    if (users && typeof users === 'object' && !Array.isArray(users)) delete users[creator];
  }
  return content;
}

/** The auth events a server would pick for an event from the state before it. */
export function selectAuthEvents(
  version: RoomVersion,
  spec: { type: string; stateKey?: string; sender: string; content: JsonObject },
  stateBefore: { get(key: StateKey): string | undefined },
): string[] {
  if (spec.type === 'm.room.create') return [];
  const createKey = stateKey('m.room.create', '');
  const ids = new Set<string>();
  const keys = [createKey, ...authEventKeysFor(spec.type, spec.stateKey, spec.sender, spec.content, version)];
  for (const key of keys) {
    // In v12 the create event is implicit and must not be listed.
    if (key === createKey && version.roomIdFromCreateEvent) continue;
    const id = stateBefore.get(key);
    if (id !== undefined) ids.add(id);
  }
  return [...ids];
}

export interface Dag {
  version: RoomVersion;
  events: EventMap;
  /** The state after each node, by node name. */
  stateAfter: Map<string, Map<StateKey, string>>;
}

export function buildDag(
  version: RoomVersion,
  extraNodes: readonly NodeSpec[],
  chains: readonly (readonly string[])[],
  initial: { nodes: readonly NodeSpec[]; chain: readonly string[] } = { nodes: INITIAL_NODES, chain: INITIAL_CHAIN },
): Dag {
  const nodes = [...initial.nodes, ...extraNodes];
  const position = new Map(nodes.map((node, i) => [node.id, i]));
  const prevs: number[][] = nodes.map(() => []);
  for (const chain of [initial.chain, ...chains]) {
    for (let i = 0; i + 1 < chain.length; i++) {
      const from = position.get(chain[i]!);
      const to = position.get(chain[i + 1]!);
      if (from === undefined || to === undefined) throw new Error(`unknown node in chain ${chain.join(' → ')}`);
      if (!prevs[from]!.includes(to)) prevs[from]!.push(to);
    }
  }
  const order = lexicographicalTopologicalSort(prevs, (a, b) => compareCodePoints(nodes[a]!.id, nodes[b]!.id) < 0);
  if (!order) throw new Error('the scenario has a cycle');

  const creator = nodes.find((node) => node.type === 'm.room.create')!.sender;
  const events = new EventMap();
  const stateAfter = new Map<string, Map<StateKey, string>>();
  const depth = new Map<string, number>();
  let ts = 0;
  for (const i of order) {
    const node = nodes[i]!;
    const prevNodes = prevs[i]!.map((p) => nodes[p]!.id);
    const prevStates = prevNodes.map((p) => stateAfter.get(p)!);
    const before = prevStates.length === 0 ? new Map<StateKey, string>() : resolveState(version, prevStates, events);
    const content = contentFor(node, version, creator);
    const spec = { type: node.type, sender: node.sender, content, ...(node.stateKey !== undefined ? { stateKey: node.stateKey } : {}) };
    const d = Math.max(0, ...prevNodes.map((p) => depth.get(p)!)) + 1;
    depth.set(node.id, d);
    const event = makeEvent({
      ...spec,
      id: idOf(node.id),
      roomId: roomIdFor(version),
      prevEvents: prevNodes.map(idOf),
      authEvents: selectAuthEvents(version, spec, before),
      originServerTs: ts++,
      depth: d,
      ...(node.type === 'm.room.create' && version.roomIdFromCreateEvent ? { omitRoomIdFromPdu: true } : {}),
    });
    events.add(event);
    const after = new Map(before);
    if (event.stateKey !== undefined) after.set(stateKey(event.type, event.stateKey), event.eventId);
    stateAfter.set(node.id, after);
  }
  return { version, events, stateAfter };
}

/**
 * The state at END as the scenario's expectation is written: the keys of the expected nodes, plus
 * every key whose value differs from the state at START. Returned as key → node name for both.
 */
export function endStateAgainstExpected(
  dag: Dag,
  expectedNodes: readonly string[],
): { actual: Map<StateKey, string>; expected: Map<StateKey, string> } {
  const expected = new Map<StateKey, string>();
  for (const node of expectedNodes) {
    const event = dag.events.get(idOf(node))!;
    expected.set(stateKey(event.type, event.stateKey!), node);
  }
  const start = dag.stateAfter.get('START')!;
  const actual = new Map<StateKey, string>();
  for (const [key, id] of dag.stateAfter.get('END')!) {
    if (expected.has(key) || start.get(key) !== id) actual.set(key, nodeOf(id));
  }
  return { actual, expected };
}

// ---------------------------------------------------------------------------------------------
// Synthetic forked rooms

/** mulberry32: a small, fast, seedable PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

export interface ForkedRoomOptions {
  version: RoomVersion;
  seed: number;
  /** Roughly how many events to create in all (trunk plus forks). */
  totalEvents: number;
  forks: number;
  users: number;
  /** Fraction of `totalEvents` spent on the shared trunk before the forks split. */
  trunkShare?: number;
  /** Fraction of fork events that are messages; the rest are state changes of many kinds. */
  messageShare?: number;
}

export interface ForkedRoom {
  version: RoomVersion;
  events: EventMap;
  /** The state after each fork's last event. */
  tips: Map<StateKey, string>[];
  /** The state where the forks split. */
  trunk: Map<StateKey, string>;
  eventCount: number;
  stateEventCount: number;
}

interface Fork {
  state: Map<StateKey, RoomEvent>;
  last: string;
  depth: number;
}

/**
 * A room with one admin (the creator), a few moderators and many users, a shared trunk, and
 * `forks` forks that each go their own way for a long time. Events that the auth rules would
 * reject on their fork are not kept, so some attempts produce nothing.
 */
export function generateForkedRoom(options: ForkedRoomOptions): ForkedRoom {
  const { version, totalEvents, forks: forkCount, users: userCount } = options;
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const events = new EventMap();
  const roomId = version.roomIdFromCreateEvent ? '!create' : '!room:example.com';
  const admin = '@admin:s0.example';
  const mods = Array.from({ length: 5 }, (_, i) => `@mod${i}:s${i % 7}.example`);
  const users = Array.from({ length: userCount }, (_, i) => `@u${i}:s${i % 23}.example`);
  const regulars = users.slice(0, 40);
  let ts = 1_600_000_000_000;
  let serial = 0;
  let stateEvents = 0;

  const emit = (
    fork: Fork,
    spec: { type: string; sender: string; stateKey?: string; content: JsonObject },
    force = false,
  ): RoomEvent | undefined => {
    const stateIds = { get: (key: StateKey) => fork.state.get(key)?.eventId };
    const isCreate = spec.type === 'm.room.create';
    const event = makeEvent({
      ...spec,
      id: isCreate ? '$create' : `$e${++serial}`,
      roomId,
      prevEvents: fork.last === '' ? [] : [fork.last],
      authEvents: selectAuthEvents(version, spec, stateIds),
      originServerTs: (ts += 1 + Math.floor(random() * 3)),
      depth: fork.depth + 1,
      ...(isCreate && version.roomIdFromCreateEvent ? { omitRoomIdFromPdu: true } : {}),
    });
    if (!force && !checkEventAuth(event, fork.state, version).allowed) return undefined;
    events.add(event);
    fork.last = event.eventId;
    fork.depth += 1;
    if (event.stateKey !== undefined) {
      fork.state.set(stateKey(event.type, event.stateKey), event);
      stateEvents++;
    }
    return event;
  };

  const membership = (fork: Fork, user: string): string | undefined => {
    const value = fork.state.get(stateKey('m.room.member', user))?.content['membership'];
    return typeof value === 'string' ? value : undefined;
  };
  const powerContent = (fork: Fork): JsonObject => structuredClone(fork.state.get(stateKey('m.room.power_levels', ''))?.content ?? {});
  const joinRule = (fork: Fork) => fork.state.get(stateKey('m.room.join_rules', ''))?.content['join_rule'];

  // The trunk: create, admin and moderators, public room, then people join and talk.
  const trunk: Fork = { state: new Map(), last: '', depth: 0 };
  emit(
    trunk,
    {
      type: 'm.room.create',
      sender: admin,
      stateKey: '',
      content: { room_version: version.id, ...(version.creatorIsCreateSender ? {} : { creator: admin }) },
    },
    true,
  );
  emit(trunk, { type: 'm.room.member', sender: admin, stateKey: admin, content: { membership: 'join' } });
  const usersLevels: JsonObject = Object.fromEntries(mods.map((m) => [m, 50]));
  if (!version.privilegedCreators) usersLevels[admin] = 100;
  emit(trunk, {
    type: 'm.room.power_levels',
    sender: admin,
    stateKey: '',
    content: { users: usersLevels, state_default: 50, events_default: 0, kick: 50, ban: 50, invite: 0 },
  });
  emit(trunk, { type: 'm.room.join_rules', sender: admin, stateKey: '', content: { join_rule: 'public' } });
  emit(trunk, { type: 'm.room.history_visibility', sender: admin, stateKey: '', content: { history_visibility: 'shared' } });
  for (const mod of mods) emit(trunk, { type: 'm.room.member', sender: mod, stateKey: mod, content: { membership: 'join' } });

  const trunkTarget = Math.floor(totalEvents * (options.trunkShare ?? 0.1));
  const messageShare = options.messageShare ?? 0.6;
  const step = (fork: Fork) => {
    const joined = (user: string) => membership(fork, user) === 'join';
    const r = random();
    if (r < messageShare) {
      const sender = pick(users);
      if (joined(sender)) emit(fork, { type: 'm.room.message', sender, content: { msgtype: 'm.text', body: `hello ${serial}` } });
      else emit(fork, { type: 'm.room.member', sender, stateKey: sender, content: { membership: 'join' } });
      return;
    }
    const s = (r - messageShare) / (1 - messageShare);
    const user = pick(users);
    const mod = pick(mods);
    if (s < 0.3) {
      // Join (or try to: an invite-only room needs an invite first).
      if (joinRule(fork) !== 'public' && membership(fork, user) !== 'invite') {
        emit(fork, { type: 'm.room.member', sender: mod, stateKey: user, content: { membership: 'invite' } });
      } else
        emit(fork, { type: 'm.room.member', sender: user, stateKey: user, content: { membership: 'join', displayname: `u${serial}` } });
    } else if (s < 0.45) {
      emit(fork, { type: 'm.room.member', sender: user, stateKey: user, content: { membership: 'leave' } });
    } else if (s < 0.6) {
      emit(fork, {
        type: 'm.room.member',
        sender: user,
        stateKey: user,
        content: { membership: 'join', displayname: `renamed ${serial}` },
      });
    } else if (s < 0.7) {
      emit(fork, { type: 'm.room.topic', sender: pick([mod, user]), stateKey: '', content: { topic: `topic ${serial}` } });
    } else if (s < 0.78) {
      emit(fork, { type: 'm.room.member', sender: mod, stateKey: user, content: { membership: random() < 0.5 ? 'leave' : 'ban' } });
    } else if (s < 0.82) {
      if (membership(fork, user) === 'ban')
        emit(fork, { type: 'm.room.member', sender: mod, stateKey: user, content: { membership: 'leave' } });
    } else if (s < 0.9) {
      // Power-level changes: the admin (or a moderator, who may fail) promotes or demotes someone.
      const content = powerContent(fork);
      const levels = (content['users'] ??= {}) as JsonObject;
      // Promotions go to a pool of regulars, so `users` stays the size real rooms have.
      const target = random() < 0.2 ? pick(mods) : pick(regulars);
      levels[target] = pick([0, 10, 50]);
      if (random() < 0.1) content['state_default'] = pick([50, 60]);
      emit(fork, { type: 'm.room.power_levels', sender: random() < 0.7 ? admin : mod, stateKey: '', content });
    } else if (s < 0.95) {
      const next = joinRule(fork) === 'public' ? 'invite' : 'public';
      emit(fork, { type: 'm.room.join_rules', sender: random() < 0.5 ? admin : mod, stateKey: '', content: { join_rule: next } });
    } else {
      emit(fork, { type: 'm.room.name', sender: pick([mod, user, admin]), stateKey: '', content: { name: `room ${serial}` } });
    }
  };

  let attempts = 0;
  while (events.map.size < trunkTarget && attempts++ < trunkTarget * 20) step(trunk);

  const forks: Fork[] = Array.from({ length: forkCount }, () => ({
    state: new Map(trunk.state),
    last: trunk.last,
    depth: trunk.depth,
  }));
  attempts = 0;
  while (events.map.size < totalEvents && attempts++ < totalEvents * 20) {
    // Forks advance at different speeds, so they differ in length too.
    const fork = forks[Math.floor(Math.pow(random(), 1.3) * forkCount)]!;
    step(fork);
  }

  const toIds = (state: Map<StateKey, RoomEvent>) => {
    const ids = new Map<StateKey, string>();
    for (const [key, event] of state) ids.set(key, event.eventId);
    return ids;
  };
  return {
    version,
    events,
    tips: forks.map((fork) => toIds(fork.state)),
    trunk: toIds(trunk.state),
    eventCount: events.map.size,
    stateEventCount: stateEvents,
  };
}
