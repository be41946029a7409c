// Account data (global and per room) and room tags, and the account data /sync gets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, recordBus } from '../helpers/rooms.js';

forEachBackend('account data and tags', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const globalPath = (user: string, type: string) =>
    `/_matrix/client/v3/user/${encodeURIComponent(user)}/account_data/${encodeURIComponent(type)}`;
  const roomPath = (user: string, room: string, type: string) =>
    `/_matrix/client/v3/user/${encodeURIComponent(user)}/rooms/${encodeURIComponent(room)}/account_data/${encodeURIComponent(type)}`;
  const tagsPath = (user: string, room: string, tag?: string) =>
    `/_matrix/client/v3/user/${encodeURIComponent(user)}/rooms/${encodeURIComponent(room)}/tags` +
    (tag === undefined ? '' : `/${encodeURIComponent(tag)}`);
  const positions = () => hs.homeserver.services.notifier.currentPositions();

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    roomId = await createRoomWith(hs, alice);
  });
  after(() => hs.stop());

  test('global account data: put, get, published, and delivered by position', async () => {
    const since = positions();
    const bus = recordBus(hs);
    const put = await hs.call('PUT', globalPath(alice.userId, 'org.example.settings'), {
      token: alice.accessToken,
      body: { theme: 'dark' },
    });
    bus.stop();
    assert.equal(put.status, 200);
    assert.deepEqual(put.json, {});
    const update = bus.updates.find((u) => u.stream === 'account_data');
    assert.deepEqual(update && { position: update.position, rows: update.rows }, {
      position: since.account_data + 1,
      rows: [{ stream: 'account_data', userId: alice.userId, type: 'org.example.settings' }],
    });
    const got = await hs.call('GET', globalPath(alice.userId, 'org.example.settings'), { token: alice.accessToken });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, { theme: 'dark' });

    const sources = hs.homeserver.services.syncSources;
    const now = positions();
    const changes = await sources.accountData(alice.userId, since.account_data, now.account_data, now.push_rules, now.push_rules);
    assert.deepEqual(changes.global, [{ type: 'org.example.settings', content: { theme: 'dark' } }]);
    const none = await sources.accountData(alice.userId, now.account_data, now.account_data, now.push_rules, now.push_rules);
    assert.deepEqual(none.global, [], 'nothing after the position');
    assert.equal(none.rooms.size, 0);

    // The same content again changes nothing; new content replaces.
    await hs.call('PUT', globalPath(alice.userId, 'org.example.settings'), { token: alice.accessToken, body: { theme: 'dark' } });
    assert.equal(positions().account_data, now.account_data);
    await hs.call('PUT', globalPath(alice.userId, 'org.example.settings'), { token: alice.accessToken, body: { theme: 'light' } });
    assert.deepEqual((await hs.call('GET', globalPath(alice.userId, 'org.example.settings'), { token: alice.accessToken })).json, {
      theme: 'light',
    });
  });

  test('an initial sync gets all account data and the push rules', async () => {
    const now = positions();
    const changes = await hs.homeserver.services.syncSources.accountData(alice.userId, 0, now.account_data, 0, now.push_rules);
    assert.ok(changes.global.some((e) => e.type === 'org.example.settings'));
    const rules = changes.global.find((e) => e.type === 'm.push_rules');
    assert.ok(rules, 'm.push_rules is part of an initial sync');
    assert.ok(Array.isArray((rules.content as any).global.override));
  });

  test('room account data: put, get, and delivered under the room', async () => {
    const since = positions();
    const put = await hs.call('PUT', roomPath(alice.userId, roomId, 'org.example.room'), {
      token: alice.accessToken,
      body: { pinned: true },
    });
    assert.equal(put.status, 200);
    assert.deepEqual((await hs.call('GET', roomPath(alice.userId, roomId, 'org.example.room'), { token: alice.accessToken })).json, {
      pinned: true,
    });
    const now = positions();
    const changes = await hs.homeserver.services.syncSources.accountData(
      alice.userId,
      since.account_data,
      now.account_data,
      now.push_rules,
      now.push_rules,
    );
    assert.deepEqual(changes.global, []);
    assert.deepEqual(changes.rooms.get(roomId), [{ type: 'org.example.room', content: { pinned: true } }]);
    // Global and room data of the same type are separate.
    assert.equal((await hs.call('GET', globalPath(alice.userId, 'org.example.room'), { token: alice.accessToken })).status, 404);
  });

  test('tags: add, list, replace, remove, as m.tag room account data', async () => {
    const since = positions();
    assert.deepEqual((await hs.call('GET', tagsPath(alice.userId, roomId), { token: alice.accessToken })).json, { tags: {} });
    assert.equal(
      (await hs.call('PUT', tagsPath(alice.userId, roomId, 'm.favourite'), { token: alice.accessToken, body: { order: 0.25 } })).status,
      200,
    );
    assert.equal((await hs.call('PUT', tagsPath(alice.userId, roomId, 'u.work'), { token: alice.accessToken, body: {} })).status, 200);
    assert.deepEqual((await hs.call('GET', tagsPath(alice.userId, roomId), { token: alice.accessToken })).json, {
      tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} },
    });
    await hs.call('PUT', tagsPath(alice.userId, roomId, 'm.favourite'), { token: alice.accessToken, body: { order: 0.5 } });
    const removed = await hs.call('DELETE', tagsPath(alice.userId, roomId, 'u.work'), { token: alice.accessToken });
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.json, {});
    assert.deepEqual((await hs.call('GET', tagsPath(alice.userId, roomId), { token: alice.accessToken })).json, {
      tags: { 'm.favourite': { order: 0.5 } },
    });
    const now = positions();
    const changes = await hs.homeserver.services.syncSources.accountData(
      alice.userId,
      since.account_data,
      now.account_data,
      now.push_rules,
      now.push_rules,
    );
    assert.deepEqual(changes.rooms.get(roomId), [{ type: 'm.tag', content: { tags: { 'm.favourite': { order: 0.5 } } } }]);
    // Removing a tag that is not there changes nothing.
    assert.equal((await hs.call('DELETE', tagsPath(alice.userId, roomId, 'u.none'), { token: alice.accessToken })).status, 200);
    assert.equal(positions().account_data, now.account_data);
  });

  test('m.push_rules reads as the push rules; server-controlled types cannot be written', async () => {
    const rules = await hs.call('GET', globalPath(alice.userId, 'm.push_rules'), { token: alice.accessToken });
    assert.equal(rules.status, 200);
    assert.ok(rules.json.global.underride.some((r: any) => r.rule_id === '.m.rule.message'));
    for (const path of [
      globalPath(alice.userId, 'm.push_rules'),
      globalPath(alice.userId, 'm.fully_read'),
      roomPath(alice.userId, roomId, 'm.fully_read'),
      roomPath(alice.userId, roomId, 'm.push_rules'),
    ]) {
      const res = await hs.call('PUT', path, { token: alice.accessToken, body: {} });
      assert.equal(res.status, 405, path);
      assert.equal(res.json.errcode, 'M_BAD_JSON');
    }
  });

  test('errors', async () => {
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('GET', globalPath(alice.userId, 'x'), {}), 401, 'M_MISSING_TOKEN'],
      ['bad token', await hs.call('PUT', globalPath(alice.userId, 'x'), { token: 'bad', body: {} }), 401, 'M_UNKNOWN_TOKEN'],
      [
        'unknown type',
        await hs.call('GET', globalPath(alice.userId, 'org.example.none'), { token: alice.accessToken }),
        404,
        'M_NOT_FOUND',
      ],
      [
        'unknown room type',
        await hs.call('GET', roomPath(alice.userId, roomId, 'org.example.none'), { token: alice.accessToken }),
        404,
        'M_NOT_FOUND',
      ],
      [
        'other user get',
        await hs.call('GET', globalPath(alice.userId, 'org.example.settings'), { token: bob.accessToken }),
        403,
        'M_FORBIDDEN',
      ],
      ['other user put', await hs.call('PUT', globalPath(alice.userId, 'x'), { token: bob.accessToken, body: {} }), 403, 'M_FORBIDDEN'],
      [
        'other user room put',
        await hs.call('PUT', roomPath(alice.userId, roomId, 'x'), { token: bob.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
      [
        'bad room id',
        await hs.call('PUT', roomPath(alice.userId, 'not-a-room', 'x'), { token: alice.accessToken, body: {} }),
        400,
        'M_INVALID_PARAM',
      ],
      [
        'body not an object',
        await hs.call('PUT', globalPath(alice.userId, 'x'), { token: alice.accessToken, rawBody: '[]' }),
        400,
        'M_BAD_JSON',
      ],
      ['body not JSON', await hs.call('PUT', globalPath(alice.userId, 'x'), { token: alice.accessToken, rawBody: '{' }), 400, 'M_NOT_JSON'],
      ['other user tags', await hs.call('GET', tagsPath(alice.userId, roomId), { token: bob.accessToken }), 403, 'M_FORBIDDEN'],
      [
        'other user tag put',
        await hs.call('PUT', tagsPath(alice.userId, roomId, 't'), { token: bob.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
      [
        'other user tag delete',
        await hs.call('DELETE', tagsPath(alice.userId, roomId, 't'), { token: bob.accessToken }),
        403,
        'M_FORBIDDEN',
      ],
      [
        'tag order not a number',
        await hs.call('PUT', tagsPath(alice.userId, roomId, 't'), { token: alice.accessToken, body: { order: 'first' } }),
        400,
        'M_BAD_JSON',
      ],
      [
        'tag too long',
        await hs.call('PUT', tagsPath(alice.userId, roomId, 'x'.repeat(256)), { token: alice.accessToken, body: {} }),
        400,
        'M_INVALID_PARAM',
      ],
      [
        'tag in a room never joined',
        await hs.call('PUT', tagsPath(bob.userId, roomId, 't'), { token: bob.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
    ];
    for (const [what, res, status, errcode] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errcode, errcode, what);
    }
  });
});
