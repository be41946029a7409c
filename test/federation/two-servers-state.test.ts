// State resolution across two real Myelins (issue 11, test 5): while B is down, A's admin renames
// the room and takes B's moderator's power away; B comes back and its moderator, not knowing,
// renames the room and sets its topic. The room's DAG forks; once the federation sender has
// delivered both branches both ways, both servers hold the same resolved state (the room version's
// state resolution: the power change wins, so the moderator's changes are rejected), and their
// /state and /sync (`use_state_after`) say so.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import { startFederatingServer, type FederatingServer } from '../helpers/federation.js';
import { call, enc, ok, rawSync, registerAccount, type Account } from '../helpers/federation-clients.js';
import { eventually } from '../helpers/wait.js';
import { logger } from 'matrix-js-sdk/lib/logger.js';

(logger as unknown as { setLevel(level: string): void }).setLevel('silent');

type StateMap = Map<string, { eventId: string; content: any }>;

function stateMap(events: any[]): StateMap {
  return new Map(events.map((e) => [`${e.type}|${e.state_key}`, { eventId: e.event_id as string, content: e.content }]));
}

async function roomState(account: Account, roomId: string): Promise<StateMap> {
  return stateMap(await ok(call(account, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state`)));
}

function ids(map: StateMap): Record<string, string> {
  return Object.fromEntries([...map].map(([key, { eventId }]) => [key, eventId]).sort());
}

forEachBackend('state resolution across two Myelins', (backend) => {
  let a: FederatingServer;
  let b: FederatingServer;
  let bDatabase: Record<string, unknown>;

  before(async () => {
    // A retries B only when B contacts it again (a long pause after a failure), so A's branch
    // cannot reach B before B's moderator has made the concurrent changes.
    a = await startFederatingServer({
      database: await backend.databaseConfig(),
      config: { federation: { destination_min_retry_interval: '1h' } },
    });
    bDatabase = await backend.databaseConfig();
    b = await startFederatingServer({ database: bDatabase });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  test('concurrent renames and a power change on A and B: both servers end with the same resolved state', async () => {
    const alice = await registerAccount(a, 'alice');
    let bob = await registerAccount(b, 'bob');
    const roomId = (
      await ok(
        call(alice, 'POST', '/_matrix/client/v3/createRoom', {
          preset: 'public_chat',
          name: 'Before',
          topic: 'Topic before',
          power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50 } },
        }),
      )
    ).room_id as string;
    await ok(call(bob, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {}));
    await eventually(async () => (await roomState(alice, roomId)).get(`m.room.member|${bob.userId}`)?.content.membership === 'join', 'A');
    const bobSince = (await rawSync(bob)).next_batch as string;

    // B goes down; A's branch: a new name, and bob's power taken away.
    await b.stop();
    const aName = (await ok(call(alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'Name from A' })))
      .event_id as string;
    const levels = (await roomState(alice, roomId)).get('m.room.power_levels|')!.content;
    const aLevels = (
      await ok(
        call(alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, {
          ...levels,
          users: { ...levels.users, [bob.userId]: 0 },
        }),
      )
    ).event_id as string;

    // B comes back (same name, key and database); bob, still a moderator there, renames the room and sets its topic.
    b = await startFederatingServer({ port: b.port, dir: b.hs.dir, database: bDatabase, certificate: b.certificate });
    bob = { ...bob, server: b };
    const bName = (await ok(call(bob, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'Name from B' })))
      .event_id as string;
    const bTopic = (await ok(call(bob, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'Topic from B' })))
      .event_id as string;

    // The DAG forked: B's changes do not follow A's.
    const fromB = (await a.federation.client.request(b.serverName, {
      method: 'GET',
      path: `/_matrix/federation/v1/event/${enc(bName)}`,
    })) as {
      pdus: Array<{ prev_events: string[] }>;
    };
    assert.ok(!fromB.pdus[0]!.prev_events.includes(aLevels) && !fromB.pdus[0]!.prev_events.includes(aName), 'B did not know A’s branch');

    // Both servers converge on the resolved state: A's power change first, so bob's changes fail.
    const [onA, onB] = await eventually(
      async () => {
        const [stateA, stateB] = await Promise.all([roomState(alice, roomId), roomState(bob, roomId)]);
        return stateA.get('m.room.name|')?.eventId === aName &&
          stateB.get('m.room.name|')?.eventId === aName &&
          stateB.get('m.room.power_levels|')?.eventId === aLevels &&
          stateB.get('m.room.topic|')?.eventId !== bTopic
          ? [stateA, stateB]
          : undefined;
      },
      'both servers to resolve the forked state',
      60_000,
    );
    assert.deepEqual(ids(onB), ids(onA), 'the same state on both servers');
    assert.equal(onA.get('m.room.name|')!.content.name, 'Name from A');
    assert.equal(onA.get('m.room.topic|')!.content.topic, 'Topic before');
    assert.equal(onA.get('m.room.power_levels|')!.content.users[bob.userId], 0);
    assert.notEqual(onA.get('m.room.name|')!.eventId, bName);

    // /sync says the same on both servers: the state after the timeline, initial and incremental.
    const syncState = async (account: Account, since?: string) => {
      const body = await rawSync(account, { use_state_after: 'true', ...(since ? { since } : {}) });
      const room = body.rooms?.join?.[roomId];
      assert.ok(room?.state_after, `${account.userId}'s sync has the room's state_after`);
      return stateMap(room.state_after.events);
    };
    const initialA = await syncState(alice);
    const initialB = await syncState(bob);
    for (const [key, { eventId }] of onA) {
      assert.equal(initialA.get(key)?.eventId, eventId, `A's initial sync: ${key}`);
      assert.equal(initialB.get(key)?.eventId, eventId, `B's initial sync: ${key}`);
    }
    // Bob's client synced before B went down: the changes since then bring it to the resolved state.
    const incremental = await syncState(bob, bobSince);
    for (const key of ['m.room.name|', 'm.room.topic|', 'm.room.power_levels|']) {
      const expected = onA.get(key)!.eventId;
      // state_after lists what changed in the room's state since `since` (or is in the timeline).
      if (incremental.has(key)) assert.equal(incremental.get(key)!.eventId, expected, `B's incremental sync: ${key}`);
    }
    assert.equal(incremental.get('m.room.name|')?.eventId, aName, 'the new name in B’s incremental sync');
    assert.equal(incremental.get('m.room.power_levels|')?.eventId, aLevels, 'the new power levels in B’s incremental sync');
  });

  test('two allowed concurrent renames on A and B: both servers keep the later one', async () => {
    const alice = await registerAccount(a, 'alice2');
    let bob = await registerAccount(b, 'bob2');
    const roomId = (
      await ok(
        call(alice, 'POST', '/_matrix/client/v3/createRoom', {
          preset: 'public_chat',
          name: 'Before',
          power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50 } },
        }),
      )
    ).room_id as string;
    await ok(call(bob, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {}));
    await eventually(async () => (await roomState(alice, roomId)).get(`m.room.member|${bob.userId}`)?.content.membership === 'join', 'A');

    await b.stop();
    const rename = (account: Account, name: string) =>
      ok(call(account, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`, { name })).then((r) => r.event_id as string);
    const aName = await rename(alice, 'Earlier, from A');
    b = await startFederatingServer({ port: b.port, dir: b.hs.dir, database: bDatabase, certificate: b.certificate });
    bob = { ...bob, server: b };
    // Made after B's restart, so later by the clock: both renames are allowed and have the same power
    // event, so state resolution orders them by origin_server_ts and the later one is the state.
    const bName = await rename(bob, 'Later, from B');

    const [onA, onB] = await eventually(
      async () => {
        const [stateA, stateB] = await Promise.all([roomState(alice, roomId), roomState(bob, roomId)]);
        return stateA.get('m.room.name|')?.eventId === bName && stateB.get('m.room.name|')?.eventId === bName
          ? [stateA, stateB]
          : undefined;
      },
      'both servers to keep the later rename',
      60_000,
    );
    assert.deepEqual(ids(onB), ids(onA), 'the same state on both servers');
    assert.notEqual(aName, bName);
    for (const account of [alice, bob]) {
      const body = await rawSync(account, { use_state_after: 'true' });
      const after = stateMap(body.rooms.join[roomId].state_after.events);
      assert.equal(after.get('m.room.name|')?.eventId, bName, `${account.userId}'s sync`);
    }
  });
});
