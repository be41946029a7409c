// POST /user/{userId}/filter, GET /user/{userId}/filter/{filterId}, and filters.getFilter for /sync.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('filters', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  const filterPath = (user: string, id?: string) =>
    `/_matrix/client/v3/user/${encodeURIComponent(user)}/filter${id === undefined ? '' : `/${encodeURIComponent(id)}`}`;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
  });
  after(() => hs.stop());

  test('filters get per-user integer ids and read back as uploaded', async () => {
    const filter = {
      room: { timeline: { limit: 8, types: ['m.room.message'] }, state: { lazy_load_members: true } },
      presence: { not_types: ['*'] },
    };
    const first = await hs.call('POST', filterPath(alice.userId), { token: alice.accessToken, body: filter });
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, { filter_id: '0' });
    const second = await hs.call('POST', filterPath(alice.userId), { token: alice.accessToken, body: {} });
    assert.deepEqual(second.json, { filter_id: '1' });
    const bobs = await hs.call('POST', filterPath(bob.userId), { token: bob.accessToken, body: {} });
    assert.deepEqual(bobs.json, { filter_id: '0' }, 'ids are per user');

    const got = await hs.call('GET', filterPath(alice.userId, '0'), { token: alice.accessToken });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, filter);
  });

  test('getFilter gives /sync the parsed filter, or undefined', async () => {
    const filters = hs.homeserver.services.filters;
    const parsed = await filters.getFilter(alice.userId, '0');
    assert.equal(parsed?.room.timeline.limit, 8);
    assert.equal(parsed?.room.state.lazyLoadMembers, true);
    assert.equal(await filters.getFilter(alice.userId, '99'), undefined);
    assert.equal(await filters.getFilter(bob.userId, '1'), undefined);
    assert.equal(await filters.getFilter(alice.userId, 'abc'), undefined);
  });

  test('a timeline limit above the cap is stored capped', async () => {
    const res = await hs.call('POST', filterPath(alice.userId), {
      token: alice.accessToken,
      body: { room: { timeline: { limit: 5000 } } },
    });
    const got = await hs.call('GET', filterPath(alice.userId, res.json.filter_id), { token: alice.accessToken });
    assert.deepEqual(got.json, { room: { timeline: { limit: 100 } } });
  });

  test('errors', async () => {
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('POST', filterPath(alice.userId), { body: {} }), 401, 'M_MISSING_TOKEN'],
      ['bad token', await hs.call('GET', filterPath(alice.userId, '0'), { token: 'bad' }), 401, 'M_UNKNOWN_TOKEN'],
      [
        'create for another user',
        await hs.call('POST', filterPath(alice.userId), { token: bob.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
      ["get another user's", await hs.call('GET', filterPath(alice.userId, '0'), { token: bob.accessToken }), 403, 'M_FORBIDDEN'],
      ['unknown id', await hs.call('GET', filterPath(alice.userId, '42'), { token: alice.accessToken }), 404, 'M_NOT_FOUND'],
      ['not an id', await hs.call('GET', filterPath(alice.userId, 'abc'), { token: alice.accessToken }), 404, 'M_NOT_FOUND'],
      [
        'invalid filter',
        await hs.call('POST', filterPath(alice.userId), { token: alice.accessToken, body: { room: { timeline: { limit: 'ten' } } } }),
        400,
        'M_BAD_JSON',
      ],
      [
        'invalid senders',
        await hs.call('POST', filterPath(alice.userId), { token: alice.accessToken, body: { presence: { senders: ['not-a-user'] } } }),
        400,
        'M_BAD_JSON',
      ],
      ['not an object', await hs.call('POST', filterPath(alice.userId), { token: alice.accessToken, rawBody: '"x"' }), 400, 'M_BAD_JSON'],
    ];
    for (const [what, res, status, errcode] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errcode, errcode, what);
    }
  });
});
