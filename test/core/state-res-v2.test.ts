// State resolution v2 (rooms v2–v11) and v2.1 (v12) on the worked scenarios that other
// implementations' suites use (Synapse `tests/state/test_v2.py`), re-expressed as our own DAGs.
// Each scenario runs on every room version with state resolution v2, and on v12.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthGraph } from '../../src/core/auth-chain.js';
import { stateKey } from '../../src/core/events.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../src/core/room-versions.js';
import { compareCodePoints, lexicographicalTopologicalSort, resolveState, separateStateSets } from '../../src/core/state-res.js';
import { makeEvent } from './helpers/events.js';
import {
  ALICE,
  BOB,
  CHARLIE,
  EVELYN,
  EventMap,
  ZARA,
  buildDag,
  endStateAgainstExpected,
  idOf,
  type NodeSpec,
} from './helpers/state-res-scenarios.js';

const V2_VERSIONS = [...ROOM_VERSIONS.values()].filter((v) => v.stateResolution === 'v2');
const V12 = getRoomVersion('12')!;

interface Scenario {
  name: string;
  nodes: NodeSpec[];
  chains: string[][];
  /** The nodes whose keys END must hold; other keys at END must equal START's. */
  expected: string[];
  /** When v2.1 gives a different answer, and why. */
  expectedV21?: string[];
}

const member = (id: string, sender: string, target: string, membership: string): NodeSpec => ({
  id,
  type: 'm.room.member',
  sender,
  stateKey: target,
  content: { membership },
});
const powerLevels = (id: string, sender: string, content: NodeSpec['content']): NodeSpec => ({
  id,
  type: 'm.room.power_levels',
  sender,
  stateKey: '',
  content: content ?? {},
});
const topic = (id: string, sender: string): NodeSpec => ({
  id,
  type: 'm.room.topic',
  sender,
  stateKey: '',
  content: { topic: id },
});

const SCENARIOS: Scenario[] = [
  {
    // Alice bans Bob on one branch while Bob, still a moderator, re-sends the power levels on the
    // other. The ban must win: Bob's power-levels event is replayed after it and fails.
    name: 'ban vs power-level change',
    nodes: [
      powerLevels('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      member('MA', ALICE, ALICE, 'join'),
      member('MB', ALICE, BOB, 'ban'),
      powerLevels('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
    ],
    chains: [
      ['END', 'MB', 'MA', 'PA', 'START'],
      ['END', 'PB', 'PA'],
    ],
    expected: ['PA', 'MA', 'MB'],
  },
  {
    // Evelyn joins on a branch where the room was made private on the other: the join is
    // replayed after the join-rule change and fails.
    name: 'join-rule evasion',
    nodes: [
      { id: 'JR', type: 'm.room.join_rules', sender: ALICE, stateKey: '', content: { join_rule: 'private' } },
      member('ME', EVELYN, EVELYN, 'join'),
    ],
    chains: [
      ['END', 'JR', 'START'],
      ['END', 'ME', 'START'],
    ],
    expected: ['JR'],
  },
  {
    // Three power-levels events in a line against the older one alone: the newest survives.
    name: 'offtopic power levels',
    nodes: [
      powerLevels('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      powerLevels('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
      powerLevels('PC', CHARLIE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 0 } }),
    ],
    chains: [
      ['END', 'PC', 'PB', 'PA', 'START'],
      ['END', 'PA'],
    ],
    expected: ['PC'],
  },
  {
    // Alice demotes Bob (PA2) while Bob re-sends power levels and sets a topic on the other
    // branch: Bob's events fail, and Alice's latest topic stands.
    name: 'topic basic',
    nodes: [
      topic('T1', ALICE),
      powerLevels('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      powerLevels('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      powerLevels('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
    ],
    chains: [
      ['END', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T3', 'PB', 'PA1'],
    ],
    expected: ['PA2', 'T2'],
  },
  {
    // Bob's topic T2 is followed by his ban; the other branch only knows T1. The ban is a power
    // event and is applied first, so T2 fails and the topic resets to T1.
    name: 'topic reset',
    nodes: [
      topic('T1', ALICE),
      powerLevels('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', BOB),
      member('MB', ALICE, BOB, 'ban'),
    ],
    chains: [
      ['END', 'MB', 'T2', 'PA', 'T1', 'START'],
      ['END', 'T1'],
    ],
    expected: ['T1', 'MB', 'PA'],
  },
  {
    // Like "topic basic", but the branches meet at MZ1 before Alice sets T4.
    name: 'topic',
    nodes: [
      topic('T1', ALICE),
      powerLevels('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      powerLevels('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      powerLevels('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
      { id: 'MZ1', type: 'm.room.message', sender: ZARA, content: {} },
      topic('T4', ALICE),
    ],
    chains: [
      ['END', 'T4', 'MZ1', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'MZ1', 'T3', 'PB', 'PA1'],
    ],
    expected: ['T4', 'PA2'],
  },
  {
    // T4 is newer than T3 by timestamp, but T3 cites the resolved power levels PA2 and T4 cites
    // PB, whose mainline position is older, so T3 is applied last and wins.
    name: 'mainline sort',
    nodes: [
      topic('T1', ALICE),
      powerLevels('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      powerLevels('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 50 }, events: { 'm.room.power_levels': 100 } }),
      powerLevels('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
      topic('T4', ALICE),
    ],
    chains: [
      ['END', 'T3', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T4', 'PB', 'PA1'],
    ],
    expected: ['T3', 'PA2'],
  },
];

describe('state resolution v2: worked scenarios', () => {
  for (const scenario of SCENARIOS) {
    for (const version of [...V2_VERSIONS, V12]) {
      test(`${scenario.name} (room v${version.id})`, () => {
        const dag = buildDag(version, scenario.nodes, scenario.chains);
        const expectedNodes = version.stateResolution === 'v2.1' ? (scenario.expectedV21 ?? scenario.expected) : scenario.expected;
        const { actual, expected } = endStateAgainstExpected(dag, expectedNodes);
        assert.deepEqual(actual, expected);
      });
    }
  }
});

describe('reverse topological power ordering', () => {
  test('lexicographical topological sort: parents first, smallest ready node next', () => {
    // l → o, m → n, m → o, n → o, p → o (edges point at what a node depends on).
    const names = ['l', 'm', 'n', 'o', 'p'];
    const at = (name: string) => names.indexOf(name);
    const edges = [[at('o')], [at('n'), at('o')], [at('o')], [], [at('o')]];
    const order = lexicographicalTopologicalSort(edges, (a, b) => names[a]! < names[b]!);
    assert.deepEqual(
      order?.map((i) => names[i]),
      ['o', 'l', 'n', 'm', 'p'],
    );
  });

  test('a cycle is reported, not looped on', () => {
    assert.equal(
      lexicographicalTopologicalSort([[1], [0]], (a, b) => a < b),
      undefined,
    );
  });

  test('event ids compare by code point, not UTF-16 code unit', () => {
    // U+FF5E (one code unit, 0xFF5E) sorts before U+1F600 (surrogates 0xD83D 0xDE00).
    assert.ok(compareCodePoints('$\uFF5E', '$\u{1F600}') < 0);
    assert.ok('$\uFF5E' > '$\u{1F600}'); // what plain `<` would have said
    assert.ok(compareCodePoints('$a', '$ab') < 0);
    assert.equal(compareCodePoints('$x', '$x'), 0);
  });
});

describe('separating state sets', () => {
  test('a key missing from one set is conflicted even if the others agree', () => {
    const a = new Map([
      [stateKey('m.room.topic', ''), '$t'],
      [stateKey('m.room.name', ''), '$n'],
    ]);
    const b = new Map([[stateKey('m.room.topic', ''), '$t']]);
    const { unconflicted, conflicted } = separateStateSets([a, b]);
    assert.deepEqual([...unconflicted], [[stateKey('m.room.topic', ''), '$t']]);
    assert.deepEqual([...conflicted], [[stateKey('m.room.name', ''), new Set(['$n'])]]);
  });
});

describe('auth chains', () => {
  // A ← B ← C ← D and E citing C and B: a chain of member events, as in Synapse's auth
  // difference tests.
  const version = getRoomVersion('10')!;
  const events = new EventMap();
  const chain = (id: string, auth: string[]) =>
    events.add(makeEvent({ id, type: 'm.room.member', sender: ALICE, stateKey: id, content: {}, authEvents: auth, roomId: '!r:x' }));
  chain('$A', []);
  chain('$B', ['$A']);
  chain('$C', ['$B']);
  chain('$D', ['$C']);
  chain('$E', ['$C', '$B']);

  test('the auth chain of an event is its ancestors, not itself', () => {
    const graph = new AuthGraph(events, version);
    assert.deepEqual(graph.authChain('$D'), new Set(['$C', '$B', '$A']));
    assert.deepEqual(graph.authChain('$A'), new Set());
    assert.deepEqual(graph.authChain('$unknown'), new Set());
  });

  test('the auth difference is the union minus the intersection (state events count as their own chain)', () => {
    const graph = new AuthGraph(events, version);
    assert.deepEqual(graph.authChainDifference([['$A', '$B'], ['$C']]), new Set(['$C']));
    assert.deepEqual(
      graph.authChainDifference([
        ['$A', '$B'],
        ['$C', '$D'],
      ]),
      new Set(['$C', '$D']),
    );
    assert.deepEqual(
      graph.authChainDifference([
        ['$A', '$B', '$E'],
        ['$C', '$D'],
      ]),
      new Set(['$D', '$E']),
    );
    assert.deepEqual(graph.authChainDifference([['$D'], ['$D']]), new Set());
    assert.deepEqual(graph.authChainDifference([['$D'], ['$E'], ['$B']]), new Set(['$C', '$D', '$E']));
  });

  test('the conflicted subgraph holds the paths between conflicted events', () => {
    const graph = new AuthGraph(events, version);
    // D → C → B and E → C/B: between D and B lie C; A is below everything and stays out.
    assert.deepEqual(graph.conflictedSubgraph(['$D', '$B']), new Set(['$D', '$C', '$B']));
    assert.deepEqual(graph.conflictedSubgraph(['$D', '$E']), new Set(['$D', '$E']));
    assert.deepEqual(graph.conflictedSubgraph(['$E', '$A']), new Set(['$E', '$C', '$B', '$A']));
  });

  test('an event missing at first is picked up once the lookup has it', () => {
    const partial = new EventMap();
    partial.add(events.get('$D')!);
    const graph = new AuthGraph(partial, version);
    assert.deepEqual(graph.authChain('$D'), new Set(['$C']));
    partial.add(events.get('$C')!);
    partial.add(events.get('$B')!);
    assert.deepEqual(graph.authChain('$D'), new Set(['$C', '$B', '$A']));
  });

  test('v12: the create event is an implicit auth event', () => {
    const v12Events = new EventMap();
    v12Events.add(makeEvent({ id: '$CREATE', type: 'm.room.create', sender: ALICE, stateKey: '', roomId: '!CREATE' }));
    v12Events.add(makeEvent({ id: '$M', type: 'm.room.member', sender: ALICE, stateKey: ALICE, roomId: '!CREATE' }));
    assert.deepEqual(new AuthGraph(v12Events, V12).authChain('$M'), new Set(['$CREATE']));
    assert.deepEqual(new AuthGraph(v12Events, getRoomVersion('11')!).authChain('$M'), new Set());
  });
});

describe('sender power in the power ordering', () => {
  // Two join-rule changes on two branches. Bob's (power 50) is older than Charlie's (power 75),
  // but power events are ordered by sender power first (taken from each event's own auth
  // events), so Charlie's is replayed first and Bob's, applied on top, wins. Ordering by
  // timestamp alone would have picked Charlie's.
  for (const version of [getRoomVersion('10')!, getRoomVersion('11')!, V12]) {
    test(`room v${version.id}`, () => {
      const joinRule = (id: string, sender: string, rule: string): NodeSpec => ({
        id,
        type: 'm.room.join_rules',
        sender,
        stateKey: '',
        content: { join_rule: rule },
      });
      const dag = buildDag(
        version,
        [
          powerLevels('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 75 } }),
          joinRule('JB', BOB, 'invite'),
          joinRule('JC', CHARLIE, 'knock'),
        ],
        [
          ['END', 'JB', 'PA', 'START'],
          ['END', 'JC', 'PA'],
        ],
      );
      assert.ok(dag.events.get(idOf('JB'))!.originServerTs < dag.events.get(idOf('JC'))!.originServerTs);
      const { actual, expected } = endStateAgainstExpected(dag, ['PA', 'JB']);
      assert.deepEqual(actual, expected);
    });
  }
});

test('resolving at a node uses the same answer whatever the version-specific create shape', () => {
  // Sanity check on the builder itself: the v12 create event has no room id in its PDU and is
  // never listed in auth events.
  const dag = buildDag(V12, [], []);
  const ima = dag.events.get(idOf('IMA'))!;
  assert.ok(!ima.authEventIds.includes(idOf('CREATE')));
  assert.equal(dag.events.get(idOf('CREATE'))!.pdu['room_id'], undefined);
  const v11 = buildDag(getRoomVersion('11')!, [], []);
  assert.ok(v11.events.get(idOf('IMA'))!.authEventIds.includes(idOf('CREATE')));
  const state = resolveState(V12, [dag.stateAfter.get('IMZ')!, dag.stateAfter.get('IMC')!], dag.events);
  assert.equal(state.get(stateKey('m.room.member', ZARA)), idOf('IMZ'));
});
