// History visibility on every read path (/messages, /context, /event, /state, /members), per
// mode, for a user who left (SyTest SPEC-216), a user who joined late, and a non-member.
//
// Each room lives this history, written by alice in a public room:
//   M1 · bob invited · M2 · bob joins · M3 · bob leaves · M4 · name "after" · dave joins · M5
// The room's name is "before" from the start until alice changes it after bob left.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { ok } from '../helpers/http.js';

type Mode = 'world_readable' | 'shared' | 'invited' | 'joined';

interface Story {
  roomId: string;
  /** Event ids of M1..M5. */
  ids: Record<string, string>;
}

const room = (roomId: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;

forEachBackend('history visibility on the read paths', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  const stories = new Map<Mode, Story>();

  const send = async (roomId: string, body: string) =>
    (
      await ok(
        hs.call('PUT', `${room(roomId)}/send/m.room.message/${encodeURIComponent(body)}-${Math.random()}`, {
          token: alice.accessToken,
          body: { msgtype: 'm.text', body },
        }),
      )
    ).event_id as string;

  async function live(mode: Mode): Promise<Story> {
    const created = await ok(
      hs.call('POST', '/_matrix/client/v3/createRoom', {
        token: alice.accessToken,
        body: {
          preset: 'public_chat',
          name: 'before',
          initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: mode } }],
        },
      }),
    );
    const roomId: string = created.room_id;
    const ids: Record<string, string> = {};
    ids.M1 = await send(roomId, 'M1');
    await ok(hs.call('POST', `${room(roomId)}/invite`, { token: alice.accessToken, body: { user_id: bob.userId } }));
    ids.M2 = await send(roomId, 'M2');
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} }));
    ids.M3 = await send(roomId, 'M3');
    await ok(hs.call('POST', `${room(roomId)}/leave`, { token: bob.accessToken, body: {} }));
    ids.M4 = await send(roomId, 'M4');
    await ok(hs.call('PUT', `${room(roomId)}/state/m.room.name`, { token: alice.accessToken, body: { name: 'after' } }));
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: dave.accessToken, body: {} }));
    ids.M5 = await send(roomId, 'M5');
    return { roomId, ids };
  }

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    dave = await hs.createUser('dave');
    for (const mode of ['world_readable', 'shared', 'invited', 'joined'] as const) stories.set(mode, await live(mode));
  });
  after(() => hs.stop());

  /** The M-messages a user gets from /messages, oldest first (walking back from the end). */
  async function messagesSeen(user: TestUser, roomId: string): Promise<string[] | number> {
    const seen: string[] = [];
    let from: string | undefined;
    for (;;) {
      const res = await hs.call('GET', `${room(roomId)}/messages?dir=b&limit=4${from ? `&from=${from}` : ''}`, { token: user.accessToken });
      if (res.status !== 200) return res.status;
      for (const e of res.json.chunk) if (e.type === 'm.room.message') seen.unshift(e.content.body);
      if (res.json.end === undefined) return seen;
      from = res.json.end;
    }
  }

  async function eventsSeen(user: TestUser, story: Story): Promise<string[]> {
    const seen: string[] = [];
    for (const [name, id] of Object.entries(story.ids)) {
      const res = await hs.call('GET', `${room(story.roomId)}/event/${encodeURIComponent(id)}`, { token: user.accessToken });
      if (res.status === 200) seen.push(name);
      else assert.equal(res.json.errcode, 'M_NOT_FOUND', `${name}: ${res.text}`);
    }
    return seen;
  }

  const expected: Record<Mode, { bob: string[]; dave: string[]; carol: string[] | 403 }> = {
    world_readable: { bob: ['M1', 'M2', 'M3', 'M4', 'M5'], dave: ['M1', 'M2', 'M3', 'M4', 'M5'], carol: ['M1', 'M2', 'M3', 'M4', 'M5'] },
    shared: { bob: ['M1', 'M2', 'M3'], dave: ['M1', 'M2', 'M3', 'M4', 'M5'], carol: 403 },
    invited: { bob: ['M2', 'M3'], dave: ['M5'], carol: 403 },
    joined: { bob: ['M3'], dave: ['M5'], carol: 403 },
  };

  for (const mode of ['world_readable', 'shared', 'invited', 'joined'] as const) {
    test(`${mode}: /messages and /event show each user exactly what the mode allows`, async () => {
      const story = stories.get(mode)!;
      const want = expected[mode];
      assert.deepEqual(await messagesSeen(bob, story.roomId), want.bob, 'bob, who left');
      assert.deepEqual(await messagesSeen(dave, story.roomId), want.dave, 'dave, who joined late');
      assert.deepEqual(await messagesSeen(carol, story.roomId), want.carol, 'carol, never a member');
      assert.deepEqual(await messagesSeen(alice, story.roomId), ['M1', 'M2', 'M3', 'M4', 'M5'], 'alice, there all along');
      assert.deepEqual(await eventsSeen(bob, story), want.bob);
      assert.deepEqual(await eventsSeen(dave, story), want.dave);
      assert.deepEqual(await eventsSeen(carol, story), want.carol === 403 ? [] : want.carol);
    });

    test(`${mode}: /context follows the same rule, 403 for an event the user may not see`, async () => {
      const story = stories.get(mode)!;
      const want = expected[mode];
      for (const [name, id] of Object.entries(story.ids)) {
        const res = await hs.call('GET', `${room(story.roomId)}/context/${encodeURIComponent(id)}?limit=20`, { token: bob.accessToken });
        if (!want.bob.includes(name)) {
          assert.equal(res.status, 403, `${name}: ${res.text}`);
          assert.equal(res.json.errcode, 'M_FORBIDDEN');
          continue;
        }
        assert.equal(res.status, 200, res.text);
        const around = [...res.json.events_before].reverse().concat([res.json.event], res.json.events_after);
        const messages = around.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
        assert.deepEqual(messages, want.bob, `context of ${name} holds what bob may see, in order`);
      }
    });

    test(`${mode}: /state and /members show the departed user the room as they left it`, async () => {
      const story = stories.get(mode)!;
      const nameFor = async (user: TestUser) => hs.call('GET', `${room(story.roomId)}/state/m.room.name`, { token: user.accessToken });
      const bobsName = await nameFor(bob);
      assert.equal(bobsName.status, 200, bobsName.text);
      // A world-readable room is open to anyone as it is now; otherwise bob's view ends at his leave.
      assert.equal(bobsName.json.name, mode === 'world_readable' ? 'after' : 'before');
      assert.equal((await nameFor(dave)).json.name, 'after');
      const carols = await nameFor(carol);
      if (mode === 'world_readable') assert.equal(carols.json.name, 'after');
      else assert.deepEqual([carols.status, carols.json.errcode], [403, 'M_FORBIDDEN']);

      const members = await ok(hs.call('GET', `${room(story.roomId)}/members`, { token: bob.accessToken }));
      const memberships = Object.fromEntries(members.chunk.map((e: any) => [e.state_key, e.content.membership]));
      if (mode === 'world_readable')
        assert.deepEqual(memberships, { [alice.userId]: 'join', [bob.userId]: 'leave', [dave.userId]: 'join' });
      else assert.deepEqual(memberships, { [alice.userId]: 'join', [bob.userId]: 'leave' }, 'no dave: he came after bob left');

      const fullState = await ok(hs.call('GET', `${room(story.roomId)}/state`, { token: bob.accessToken }));
      const name = fullState.find((e: any) => e.type === 'm.room.name');
      assert.equal(name.content.name, mode === 'world_readable' ? 'after' : 'before');
    });
  }

  test('going forward from before the leave stops at the leave (SPEC-216)', async () => {
    const { roomId } = stories.get('joined')!;
    const res = await ok(hs.call('GET', `${room(roomId)}/messages?dir=f&limit=100`, { token: bob.accessToken }));
    const last = res.chunk.at(-1);
    assert.deepEqual([last.type, last.state_key, last.content.membership], ['m.room.member', bob.userId, 'leave']);
    assert.equal(res.end, undefined, 'nothing further for bob');
    const beyond = await ok(hs.call('GET', `${room(roomId)}/messages?dir=f&limit=100&from=s999999`, { token: bob.accessToken }));
    assert.deepEqual(beyond.chunk, []);
    assert.equal(beyond.end, undefined);
  });

  test('a forgotten room is closed to its former member', async () => {
    const { roomId } = stories.get('shared')!;
    const erin = await hs.createUser('erin');
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: erin.accessToken, body: {} }));
    await ok(hs.call('POST', `${room(roomId)}/leave`, { token: erin.accessToken, body: {} }));
    assert.equal((await hs.call('GET', `${room(roomId)}/messages?dir=b`, { token: erin.accessToken })).status, 200);
    await ok(hs.call('POST', `${room(roomId)}/forget`, { token: erin.accessToken, body: {} }));
    const res = await hs.call('GET', `${room(roomId)}/messages?dir=b`, { token: erin.accessToken });
    assert.deepEqual([res.status, res.json.errcode], [403, 'M_FORBIDDEN']);
  });

  test('history-visibility changes are seen on their boundary (SyTest "Only see history_visibility changes on boundaries")', async () => {
    const created = await ok(
      hs.call('POST', '/_matrix/client/v3/createRoom', {
        token: alice.accessToken,
        body: {
          preset: 'public_chat',
          initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
        },
      }),
    );
    const roomId: string = created.room_id;
    await send(roomId, 'hidden while joined-only');
    await ok(
      hs.call('PUT', `${room(roomId)}/state/m.room.history_visibility`, {
        token: alice.accessToken,
        body: { history_visibility: 'shared' },
      }),
    );
    await send(roomId, 'shared');
    const frank = await hs.createUser('frank');
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: frank.accessToken, body: {} }));
    const res = await ok(hs.call('GET', `${room(roomId)}/messages?dir=f&limit=50`, { token: frank.accessToken }));
    const seen = res.chunk.map((e: any) => (e.type === 'm.room.message' ? e.content.body : e.type));
    // The creation events come before any history visibility, which counts as `shared`; the
    // `joined` event itself is visible through the value before it, and the change to `shared`
    // through its new value. Only the message written while `joined` is hidden.
    assert.deepEqual(seen, [
      'm.room.create',
      'm.room.member',
      'm.room.power_levels',
      'm.room.join_rules',
      'm.room.history_visibility',
      'm.room.history_visibility',
      'shared',
      'm.room.member',
    ]);
  });

  test('/members?at= a point the user could not see is refused; at a point they could, the members then', async () => {
    const { roomId } = stories.get('joined')!;
    const aliceView = await ok(hs.call('GET', `${room(roomId)}/messages?dir=b&limit=1`, { token: alice.accessToken }));
    const now = aliceView.start as string;
    const refused = await hs.call('GET', `${room(roomId)}/members?at=${now}`, { token: bob.accessToken });
    assert.deepEqual([refused.status, refused.json.errcode], [403, 'M_FORBIDDEN']);
    // Where bob was joined: the position of M3.
    const context = await ok(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(stories.get('joined')!.ids.M3!)}?limit=0`, { token: bob.accessToken }),
    );
    const atM3 = await ok(hs.call('GET', `${room(roomId)}/members?at=${context.end}`, { token: bob.accessToken }));
    const memberships = Object.fromEntries(atM3.chunk.map((e: any) => [e.state_key, e.content.membership]));
    assert.deepEqual(memberships, { [alice.userId]: 'join', [bob.userId]: 'join' });
    const daveNow = await ok(hs.call('GET', `${room(roomId)}/members?at=${now}&membership=join`, { token: dave.accessToken }));
    assert.deepEqual(daveNow.chunk.map((e: any) => e.state_key).sort(), [alice.userId, dave.userId].sort());
  });
});
