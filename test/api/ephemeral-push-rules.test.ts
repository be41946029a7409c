// The push rules API, and m.push_rules in /sync's account data.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { recordBus } from '../helpers/rooms.js';

const KINDS = ['override', 'content', 'room', 'sender', 'underride'];

forEachBackend('push rules', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  const base = '/_matrix/client/v3/pushrules';
  const rulePath = (kind: string, ruleId: string, attr = '') => `${base}/global/${kind}/${encodeURIComponent(ruleId)}${attr}`;
  const positions = () => hs.homeserver.services.notifier.currentPositions();
  const get = (path: string) => hs.call('GET', path, { token: alice.accessToken });
  const put = (path: string, body: unknown) => hs.call('PUT', path, { token: alice.accessToken, body });

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
  });
  after(() => hs.stop());

  test('GET /pushrules/ (with and without the slash) and /pushrules/global/ list the defaults', async () => {
    const withSlash = await get(`${base}/`);
    assert.equal(withSlash.status, 200);
    assert.deepEqual(Object.keys(withSlash.json.global).sort(), [...KINDS].sort());
    assert.equal(withSlash.json.global.override[0].rule_id, '.m.rule.master');
    assert.equal(withSlash.json.global.override[0].enabled, false);
    assert.ok(withSlash.json.global.underride.every((r: any) => r.default === true));
    assert.deepEqual((await get(base)).json, withSlash.json);
    assert.deepEqual((await get(`${base}/global/`)).json, withSlash.json.global);
    assert.deepEqual((await get(`${base}/global/underride/`)).json, withSlash.json.global.underride);
    const rule = await get(rulePath('override', '.m.rule.is_user_mention'));
    assert.equal(rule.status, 200);
    assert.deepEqual(rule.json.conditions, [
      { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: alice.userId },
    ]);
  });

  test('adding rules: first by default, before/after, idempotent re-add, published on the bus', async () => {
    const since = positions().push_rules;
    const bus = recordBus(hs);
    const added = await put(rulePath('content', 'cats'), { pattern: 'cat*', actions: ['notify'] });
    bus.stop();
    assert.equal(added.status, 200);
    assert.deepEqual(added.json, {});
    const update = bus.updates.find((u) => u.stream === 'push_rules');
    assert.deepEqual(update && { position: update.position, rows: update.rows }, {
      position: since + 1,
      rows: [{ stream: 'push_rules', userId: alice.userId }],
    });

    await put(rulePath('content', 'dogs'), { pattern: 'dog', actions: ['notify'] });
    await put(`${rulePath('content', 'birds')}?after=cats`, { pattern: 'bird', actions: [] });
    await put(`${rulePath('content', 'fish')}?before=dogs`, { pattern: 'fish', actions: ['notify'] });
    const order = (await get(`${base}/`)).json.global.content.filter((r: any) => !r.default).map((r: any) => r.rule_id);
    assert.deepEqual(order, ['fish', 'dogs', 'cats', 'birds']);

    const at = positions().push_rules;
    const again = await put(rulePath('content', 'cats'), { pattern: 'cat*', actions: ['notify'] });
    assert.equal(again.status, 200);
    assert.equal(positions().push_rules, at, 'adding the same rule twice changes nothing');
    const cats = (await get(rulePath('content', 'cats'))).json;
    assert.deepEqual(cats, { rule_id: 'cats', default: false, enabled: true, pattern: 'cat*', actions: ['notify'] });

    const override = await put(rulePath('override', 'quiet-bots'), {
      conditions: [{ kind: 'event_match', key: 'sender', pattern: '@bot*' }],
      actions: [],
    });
    assert.equal(override.status, 200);
    const overrides = (await get(`${base}/global/override/`)).json.map((r: any) => r.rule_id);
    assert.deepEqual(overrides.slice(0, 2), ['.m.rule.master', 'quiet-bots'], 'user rules follow the master rule');
  });

  test('enabled and actions of user rules and server defaults', async () => {
    assert.deepEqual((await get(rulePath('override', '.m.rule.master', '/enabled'))).json, { enabled: false });
    assert.equal((await put(rulePath('override', '.m.rule.master', '/enabled'), { enabled: true })).status, 200);
    assert.deepEqual((await get(rulePath('override', '.m.rule.master', '/enabled'))).json, { enabled: true });
    await put(rulePath('override', '.m.rule.master', '/enabled'), { enabled: false });

    assert.equal(
      (await put(rulePath('underride', '.m.rule.message', '/actions'), { actions: ['notify', { set_tweak: 'sound', value: 'bell' }] }))
        .status,
      200,
    );
    assert.deepEqual((await get(rulePath('underride', '.m.rule.message', '/actions'))).json, {
      actions: ['notify', { set_tweak: 'sound', value: 'bell' }],
    });
    const message = (await get(rulePath('underride', '.m.rule.message'))).json;
    assert.equal(message.default, true);

    assert.equal((await put(rulePath('content', 'cats', '/enabled'), { enabled: false })).status, 200);
    assert.equal((await get(rulePath('content', 'cats'))).json.enabled, false);
    assert.equal((await put(rulePath('content', 'cats', '/actions'), { actions: [] })).status, 200);
    assert.deepEqual((await get(rulePath('content', 'cats', '/actions'))).json, { actions: [] });
  });

  test('deleting a user rule; server defaults cannot be deleted', async () => {
    const deleted = await hs.call('DELETE', rulePath('content', 'birds'), { token: alice.accessToken });
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.json, {});
    assert.equal((await get(rulePath('content', 'birds'))).status, 404);
    const again = await hs.call('DELETE', rulePath('content', 'birds'), { token: alice.accessToken });
    assert.equal(again.status, 404);
    assert.equal(again.json.errcode, 'M_NOT_FOUND');
    assert.equal((await hs.call('DELETE', rulePath('override', '.m.rule.master'), { token: alice.accessToken })).status, 404);
  });

  test('m.push_rules comes down /sync when the rules changed, and only then', async () => {
    const sources = hs.homeserver.services.syncSources;
    const before = positions();
    const unchanged = await sources.accountData(
      alice.userId,
      before.account_data,
      before.account_data,
      before.push_rules,
      before.push_rules,
    );
    assert.deepEqual(unchanged.global, []);
    await put(rulePath('room', '!someroom:test.local'), { actions: ['notify'] });
    const now = positions();
    assert.equal(now.push_rules, before.push_rules + 1);
    const changed = await sources.accountData(alice.userId, before.account_data, now.account_data, before.push_rules, now.push_rules);
    const rules = changed.global.find((e) => e.type === 'm.push_rules');
    assert.ok(rules);
    assert.ok((rules.content as any).global.room.some((r: any) => r.rule_id === '!someroom:test.local'));
  });

  test('a user who never changed a rule gets the defaults in an initial sync only', async () => {
    const bob = await hs.createUser('bob');
    const now = positions();
    const initial = await hs.homeserver.services.syncSources.accountData(bob.userId, 0, now.account_data, 0, now.push_rules);
    assert.ok(initial.global.some((e) => e.type === 'm.push_rules'));
    assert.ok(now.push_rules >= 1, 'the push_rules stream never stands at 0');
    const incremental = await hs.homeserver.services.syncSources.accountData(
      bob.userId,
      now.account_data,
      now.account_data,
      now.push_rules,
      now.push_rules,
    );
    assert.deepEqual(incremental.global, []);
  });

  test('errors', async () => {
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('GET', `${base}/`), 401, 'M_MISSING_TOKEN'],
      [
        'bad token',
        await hs.call('PUT', rulePath('content', 'x'), { token: 'bad', body: { pattern: 'x', actions: [] } }),
        401,
        'M_UNKNOWN_TOKEN',
      ],
      ['unknown kind', await put(rulePath('nonsense', 'x'), { actions: [] }), 400, 'M_INVALID_PARAM'],
      ['unknown kind get', await get(rulePath('nonsense', 'x')), 400, 'M_INVALID_PARAM'],
      ['reserved id', await put(rulePath('content', '.m.rule.mine'), { pattern: 'x', actions: [] }), 400, 'M_INVALID_PARAM'],
      ['no actions', await put(rulePath('content', 'x'), { pattern: 'x' }), 400, 'M_BAD_JSON'],
      ['bad action', await put(rulePath('content', 'x'), { pattern: 'x', actions: ['explode'] }), 400, 'M_BAD_JSON'],
      ['content without pattern', await put(rulePath('content', 'x'), { actions: [] }), 400, 'M_BAD_JSON'],
      ['unknown before', await put(`${rulePath('content', 'x')}?before=nope`, { pattern: 'x', actions: [] }), 400, 'M_UNKNOWN'],
      ['enabled not boolean', await put(rulePath('content', 'cats', '/enabled'), { enabled: 'yes' }), 400, 'M_BAD_JSON'],
      ['actions not array', await put(rulePath('content', 'cats', '/actions'), { actions: 'notify' }), 400, 'M_BAD_JSON'],
      ['unknown rule', await get(rulePath('content', 'nope')), 404, 'M_NOT_FOUND'],
      ['unknown rule enabled', await put(rulePath('content', 'nope', '/enabled'), { enabled: true }), 404, 'M_NOT_FOUND'],
      ['unknown default rule', await put(rulePath('override', '.m.rule.nope', '/actions'), { actions: [] }), 404, 'M_NOT_FOUND'],
      ['other scope', await get(`${base}/device/`), 404, 'M_UNRECOGNIZED'],
    ];
    for (const [what, res, status, errcode] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errcode, errcode, what);
    }
  });
});
