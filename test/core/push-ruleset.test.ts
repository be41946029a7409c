import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultRuleKind, defaultRules, localpartOf, sharedDefaultRules } from '../../src/core/push/default-rules.js';
import {
  deleteRule,
  findRule,
  insertRule,
  mergeRuleSet,
  parseActionsBody,
  parseEnabledBody,
  putRule,
  setRuleActions,
  setRuleEnabled,
  validateActions,
  validateNewRule,
  type PushRuleResult,
  type StoredUserRule,
  type StoredUserRules,
} from '../../src/core/push/ruleset.js';
import { PUSH_RULE_KINDS } from '../../src/core/push/rules.js';

const ALICE = '@alice:example.org';

function value<T>(result: PushRuleResult<T>): T {
  if (!result.ok) assert.fail(`expected success, got ${result.error.errcode}: ${result.error.message}`);
  return result.value;
}

function error<T>(result: PushRuleResult<T>): { errcode: string; status: number; message: string } {
  if (result.ok) assert.fail('expected an error');
  return { errcode: result.error.errcode, status: result.error.status, message: result.error.message };
}

const ids = (rules: readonly { rule_id: string }[]) => rules.map((r) => r.rule_id);
const userRule = (id: string, actions: StoredUserRule['actions'] = ['notify']): StoredUserRule => ({
  rule_id: id,
  enabled: true,
  actions,
});

describe('default rules', () => {
  test('ids and order per kind', () => {
    const d = defaultRules(ALICE).global;
    assert.deepEqual(ids(d.override), [
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.contains_display_name',
      '.m.rule.is_room_mention',
      '.m.rule.roomnotif',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    assert.deepEqual(ids(d.content), ['.m.rule.contains_user_name']);
    assert.deepEqual(ids(d.room), []);
    assert.deepEqual(ids(d.sender), []);
    assert.deepEqual(ids(d.underride), [
      '.m.rule.call',
      '.m.rule.encrypted_room_one_to_one',
      '.m.rule.room_one_to_one',
      '.m.rule.message',
      '.m.rule.encrypted',
    ]);
  });

  test('every default is default:true; only master is disabled', () => {
    for (const kind of PUSH_RULE_KINDS) {
      for (const r of defaultRules(ALICE).global[kind]) {
        assert.equal(r.default, true, r.rule_id);
        assert.equal(r.enabled, r.rule_id !== '.m.rule.master', r.rule_id);
      }
    }
  });

  test('user-specific parts carry the user id and localpart', () => {
    const d = defaultRules(ALICE).global;
    assert.deepEqual(d.override.find((r) => r.rule_id === '.m.rule.invite_for_me')!.conditions![2], {
      kind: 'event_match',
      key: 'state_key',
      pattern: ALICE,
    });
    assert.deepEqual(d.override.find((r) => r.rule_id === '.m.rule.is_user_mention')!.conditions, [
      { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: ALICE },
    ]);
    assert.equal(d.content[0]!.pattern, 'alice');
    assert.equal(d.content[0]!.conditions, undefined);
    assert.equal(localpartOf('@bob.smith:example.org:8448'), 'bob.smith');
  });

  test('spec definitions: a few spot checks', () => {
    const d = defaultRules(ALICE).global;
    assert.deepEqual(
      d.override.find((r) => r.rule_id === '.m.rule.is_room_mention'),
      {
        rule_id: '.m.rule.is_room_mention',
        default: true,
        enabled: true,
        conditions: [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          { kind: 'sender_notification_permission', key: 'room' },
        ],
        actions: ['notify', { set_tweak: 'highlight' }],
      },
    );
    assert.deepEqual(d.underride.find((r) => r.rule_id === '.m.rule.call')!.actions, ['notify', { set_tweak: 'sound', value: 'ring' }]);
    assert.deepEqual(d.override.find((r) => r.rule_id === '.m.rule.tombstone')!.conditions, [
      { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
      { kind: 'event_match', key: 'state_key', pattern: '' },
    ]);
  });

  test('the shared variant equals the fresh one', () => {
    assert.deepEqual(sharedDefaultRules(ALICE), defaultRules(ALICE));
    const a = sharedDefaultRules(ALICE).global.override;
    const b = sharedDefaultRules('@bob:example.org').global.override;
    assert.equal(a[1], b[1]); // suppress_notices: the same frozen object
    assert.ok(Object.isFrozen(a[1]));
    assert.notEqual(a[2], b[2]); // invite_for_me: per user
  });

  test('defaultRuleKind', () => {
    assert.equal(defaultRuleKind('.m.rule.master'), 'override');
    assert.equal(defaultRuleKind('.m.rule.contains_user_name'), 'content');
    assert.equal(defaultRuleKind('.m.rule.message'), 'underride');
    assert.equal(defaultRuleKind('.m.rule.nope'), undefined);
  });
});

describe('mergeRuleSet', () => {
  test('with nothing stored it is the defaults, every kind present', () => {
    assert.deepEqual(mergeRuleSet(ALICE), defaultRules(ALICE));
    assert.deepEqual(Object.keys(mergeRuleSet(ALICE).global).sort(), ['content', 'override', 'room', 'sender', 'underride']);
  });

  test('user rules come before defaults; master stays first', () => {
    const stored: StoredUserRules = {
      rules: {
        override: [{ rule_id: 'o1', enabled: true, conditions: [{ kind: 'event_match', key: 'type', pattern: 'x' }], actions: ['notify'] }],
        content: [{ rule_id: 'cake', enabled: false, pattern: 'cake', actions: ['notify'] }],
        room: [userRule('!a:example.org'), userRule('!b:example.org')],
        sender: [userRule('@bob:example.org')],
        underride: [{ rule_id: 'u1', enabled: true, actions: [] }],
      },
    };
    const g = mergeRuleSet(ALICE, stored).global;
    assert.deepEqual(ids(g.override).slice(0, 3), ['.m.rule.master', 'o1', '.m.rule.suppress_notices']);
    assert.deepEqual(ids(g.content), ['cake', '.m.rule.contains_user_name']);
    assert.deepEqual(ids(g.room), ['!a:example.org', '!b:example.org']);
    assert.deepEqual(ids(g.sender), ['@bob:example.org']);
    assert.deepEqual(ids(g.underride)[0], 'u1');
  });

  test('user rules in client format: default:false, fields by kind', () => {
    const stored: StoredUserRules = {
      rules: {
        content: [{ rule_id: 'cake', enabled: false, pattern: 'cake', actions: ['notify'] }],
        room: [userRule('!a:example.org')],
        underride: [{ rule_id: 'u1', enabled: true, actions: [] }],
      },
    };
    const g = mergeRuleSet(ALICE, stored).global;
    assert.deepEqual(g.content[0], { rule_id: 'cake', default: false, enabled: false, pattern: 'cake', actions: ['notify'] });
    assert.deepEqual(g.room[0], { rule_id: '!a:example.org', default: false, enabled: true, actions: ['notify'] });
    assert.deepEqual(g.underride[0], { rule_id: 'u1', default: false, enabled: true, conditions: [], actions: [] });
  });

  test('changes to defaults apply to enabled and actions only', () => {
    const stored: StoredUserRules = {
      defaults: {
        '.m.rule.master': { enabled: true },
        '.m.rule.message': { actions: ['dont_notify'] },
      },
    };
    const merged = mergeRuleSet(ALICE, stored);
    assert.deepEqual(findRule(merged, 'override', '.m.rule.master'), {
      rule_id: '.m.rule.master',
      default: true,
      enabled: true,
      conditions: [],
      actions: [],
    });
    const message = findRule(merged, 'underride', '.m.rule.message')!;
    assert.deepEqual(message.actions, ['dont_notify']);
    assert.deepEqual(message.conditions, [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }]);
    assert.equal(message.default, true);
  });

  test('findRule', () => {
    const merged = mergeRuleSet(ALICE);
    assert.equal(findRule(merged, 'content', '.m.rule.contains_user_name')?.pattern, 'alice');
    assert.equal(findRule(merged, 'override', '.m.rule.contains_user_name'), undefined);
    assert.equal(findRule(merged, 'room', 'nope'), undefined);
  });
});

describe('validateNewRule', () => {
  test('accepts each kind with the fields it needs', () => {
    assert.deepEqual(value(validateNewRule('room', '!r:example.org', { actions: ['notify'] })), {
      rule_id: '!r:example.org',
      enabled: true,
      actions: ['notify'],
    });
    // SyTest uses an alias as a room rule id; it is stored (and simply never matches).
    assert.equal(value(validateNewRule('room', '#spam:example.com', { actions: [] })).rule_id, '#spam:example.com');
    assert.deepEqual(value(validateNewRule('sender', '@bob:example.org', { actions: ['dont_notify'], conditions: [{ kind: 'x' }] })), {
      rule_id: '@bob:example.org',
      enabled: true,
      actions: ['dont_notify'],
    });
    assert.deepEqual(
      value(
        validateNewRule('content', 'cake', { pattern: 'cake*lie', actions: ['notify', { set_tweak: 'sound', value: 'cakealarm.wav' }] }),
      ),
      {
        rule_id: 'cake',
        enabled: true,
        pattern: 'cake*lie',
        actions: ['notify', { set_tweak: 'sound', value: 'cakealarm.wav' }],
      },
    );
    const override = value(
      validateNewRule('override', 'beer', {
        conditions: [
          { kind: 'event_match', key: 'content.body', pattern: 'beer' },
          { kind: 'room_member_count', is: '<=10' },
        ],
        actions: ['notify'],
      }),
    );
    assert.equal(override.conditions!.length, 2);
    assert.deepEqual(value(validateNewRule('underride', 'all', { actions: ['notify'] })).conditions, []);
  });

  test('unknown conditions, and known ones with bad parameters, are storable', () => {
    const rule = value(
      validateNewRule('override', 'odd', {
        conditions: [{ kind: 'org.example.future', foo: 1 }, { kind: 'event_match' }],
        actions: ['notify'],
      }),
    );
    assert.deepEqual(rule.conditions, [{ kind: 'org.example.future', foo: 1 }, { kind: 'event_match' }]);
  });

  test('rule id errors are M_INVALID_PARAM', () => {
    for (const id of ['.m.rule.mine', '.x', 'a/b', 'a\\b', '']) {
      assert.deepEqual(
        { errcode: error(validateNewRule('override', id, { actions: [], conditions: [] })).errcode, status: 400 },
        { errcode: 'M_INVALID_PARAM', status: 400 },
        id,
      );
    }
    assert.equal(error(validateNewRule('postcontent', 'x', { actions: [] })).errcode, 'M_INVALID_PARAM');
    assert.equal(error(validateNewRule('global', 'x', { actions: [] })).errcode, 'M_INVALID_PARAM');
  });

  test('body errors are M_BAD_JSON', () => {
    const bad: [string, unknown][] = [
      ['room', null],
      ['room', []],
      ['room', {}], // no actions
      ['room', { actions: 'notify' }],
      ['room', { actions: ['not_an_action'] }],
      ['room', { actions: [{ value: 'x' }] }], // object without set_tweak
      ['room', { actions: [{ set_tweak: 5 }] }],
      ['room', { actions: [5] }],
      ['content', { actions: ['notify'] }], // no pattern
      ['content', { actions: ['notify'], pattern: 5 }],
      ['override', { actions: [], conditions: [{}] }], // condition without kind
      ['override', { actions: [], conditions: [{ kind: 5 }] }],
      ['override', { actions: [], conditions: ['x'] }],
      ['underride', { actions: [], conditions: {} }],
    ];
    for (const [kind, body] of bad) {
      const e = error(validateNewRule(kind, 'id', body));
      assert.equal(e.errcode, 'M_BAD_JSON', `${kind} ${JSON.stringify(body)}`);
      assert.equal(e.status, 400);
    }
  });

  test('validateActions keeps historical actions', () => {
    assert.deepEqual(value(validateActions(['dont_notify', 'coalesce', 'notify'])), ['dont_notify', 'coalesce', 'notify']);
    assert.deepEqual(value(validateActions([])), []);
    assert.deepEqual(value(validateActions([{ set_tweak: 'org.example.custom', value: { a: 1 } }])), [
      { set_tweak: 'org.example.custom', value: { a: 1 } },
    ]);
  });

  test('attribute bodies', () => {
    assert.equal(value(parseEnabledBody({ enabled: false })), false);
    assert.equal(error(parseEnabledBody({ enabled: 'not a boolean' })).errcode, 'M_BAD_JSON');
    assert.equal(error(parseEnabledBody(true)).errcode, 'M_BAD_JSON');
    assert.deepEqual(value(parseActionsBody({ actions: ['notify'] })), ['notify']);
    assert.equal(error(parseActionsBody({})).errcode, 'M_BAD_JSON');
    assert.equal(error(parseActionsBody({ actions: ['bogus'] })).errcode, 'M_BAD_JSON');
  });
});

describe('insertRule', () => {
  const list = [userRule('a'), userRule('b'), userRule('c')];

  test('a new rule without anchors becomes the most important', () => {
    assert.deepEqual(ids(value(insertRule(list, userRule('n')))), ['n', 'a', 'b', 'c']);
    assert.deepEqual(ids(value(insertRule([], userRule('n')))), ['n']);
  });

  test('before and after', () => {
    assert.deepEqual(ids(value(insertRule(list, userRule('n'), { before: 'b' }))), ['a', 'n', 'b', 'c']);
    assert.deepEqual(ids(value(insertRule(list, userRule('n'), { before: 'a' }))), ['n', 'a', 'b', 'c']);
    assert.deepEqual(ids(value(insertRule(list, userRule('n'), { after: 'b' }))), ['a', 'b', 'n', 'c']);
    assert.deepEqual(ids(value(insertRule(list, userRule('n'), { after: 'c' }))), ['a', 'b', 'c', 'n']);
    // Both given: `before` decides.
    assert.deepEqual(ids(value(insertRule(list, userRule('n'), { before: 'a', after: 'c' }))), ['n', 'a', 'b', 'c']);
  });

  test('anchoring moves an existing rule', () => {
    assert.deepEqual(ids(value(insertRule(list, userRule('a'), { after: 'c' }))), ['b', 'c', 'a']);
    assert.deepEqual(ids(value(insertRule(list, userRule('c'), { before: 'a' }))), ['c', 'a', 'b']);
    assert.deepEqual(ids(value(insertRule(list, userRule('b'), { before: 'b' }))), ['a', 'b', 'c']);
  });

  test('re-adding a rule replaces it in place, keeping enabled', () => {
    const disabled = [userRule('a'), { ...userRule('b'), enabled: false }, userRule('c')];
    const once = value(insertRule(disabled, userRule('b', ['dont_notify'])));
    assert.deepEqual(ids(once), ['a', 'b', 'c']);
    assert.deepEqual(once[1], { rule_id: 'b', enabled: false, actions: ['dont_notify'] });
    assert.deepEqual(value(insertRule(once, userRule('b', ['dont_notify']))), once);
  });

  test('unknown anchors and default anchors are refused', () => {
    assert.deepEqual(error(insertRule(list, userRule('n'), { before: 'zzz' })), {
      errcode: 'M_UNKNOWN',
      status: 400,
      message: 'before/after rule not found: zzz',
    });
    assert.equal(error(insertRule(list, userRule('n'), { after: 'zzz' })).errcode, 'M_UNKNOWN');
    assert.equal(error(insertRule(list, userRule('n'), { before: 'n' })).errcode, 'M_UNKNOWN');
    const onDefault = error(insertRule(list, userRule('n'), { before: '.m.rule.message' }));
    assert.equal(onDefault.errcode, 'M_INVALID_PARAM');
    assert.equal(onDefault.status, 400);
  });

  test('the input list is not modified', () => {
    const copy = structuredClone(list);
    value(insertRule(list, userRule('n'), { after: 'a' }));
    value(insertRule(list, userRule('a', [])));
    assert.deepEqual(list, copy);
  });
});

describe('editing a stored rule set', () => {
  test('putRule validates and inserts; SyTest ordering scenarios', () => {
    let stored: StoredUserRules = {};
    stored = value(putRule(stored, 'room', '#a:example.com', { actions: ['notify'] }));
    stored = value(putRule(stored, 'room', '#b:example.com', { actions: ['notify'] }));
    assert.deepEqual(ids(mergeRuleSet(ALICE, stored).global.room), ['#b:example.com', '#a:example.com']);

    stored = value(putRule(stored, 'room', '#c:example.com', { actions: ['notify'] }, { after: '#a:example.com' }));
    assert.deepEqual(ids(mergeRuleSet(ALICE, stored).global.room), ['#b:example.com', '#a:example.com', '#c:example.com']);

    assert.equal(error(putRule(stored, 'room', '.x', { actions: [] })).errcode, 'M_INVALID_PARAM');
    assert.equal(error(putRule(stored, 'room', 'x', { actions: [] }, { before: 'nope' })).errcode, 'M_UNKNOWN');
  });

  test('deleteRule: user rules only', () => {
    let stored = value(putRule({}, 'sender', '@bob:example.org', { actions: [] }));
    stored = value(deleteRule(stored, 'sender', '@bob:example.org'));
    assert.deepEqual(mergeRuleSet(ALICE, stored).global.sender, []);
    assert.deepEqual(error(deleteRule(stored, 'sender', '@bob:example.org')), {
      errcode: 'M_NOT_FOUND',
      status: 404,
      message: 'Unknown push rule',
    });
    assert.equal(error(deleteRule(stored, 'override', '.m.rule.master')).status, 404);
  });

  test('setRuleEnabled / setRuleActions on defaults', () => {
    let stored: StoredUserRules = {};
    stored = value(setRuleEnabled(stored, 'override', '.m.rule.master', true));
    stored = value(setRuleActions(stored, 'override', '.m.rule.master', ['dont_notify']));
    assert.deepEqual(stored.defaults, { '.m.rule.master': { enabled: true, actions: ['dont_notify'] } });
    const master = findRule(mergeRuleSet(ALICE, stored), 'override', '.m.rule.master')!;
    assert.equal(master.enabled, true);
    assert.deepEqual(master.actions, ['dont_notify']);
    stored = value(setRuleEnabled(stored, 'override', '.m.rule.master', false));
    assert.deepEqual(stored.defaults, { '.m.rule.master': { enabled: false, actions: ['dont_notify'] } });
  });

  test('every default rule accepts new actions (SyTest: Can change the actions of default rules)', () => {
    let stored: StoredUserRules = {};
    const merged = mergeRuleSet(ALICE);
    for (const kind of PUSH_RULE_KINDS) {
      for (const r of merged.global[kind]) stored = value(setRuleActions(stored, kind, r.rule_id, ['dont_notify']));
    }
    for (const kind of PUSH_RULE_KINDS) {
      for (const r of mergeRuleSet(ALICE, stored).global[kind]) assert.deepEqual(r.actions, ['dont_notify'], r.rule_id);
    }
  });

  test('setRuleEnabled / setRuleActions on user rules', () => {
    let stored = value(putRule({}, 'content', 'cake', { pattern: 'cake', actions: ['notify'] }));
    stored = value(setRuleEnabled(stored, 'content', 'cake', false));
    stored = value(setRuleActions(stored, 'content', 'cake', ['notify', { set_tweak: 'highlight' }]));
    assert.deepEqual(findRule(mergeRuleSet(ALICE, stored), 'content', 'cake'), {
      rule_id: 'cake',
      default: false,
      enabled: false,
      pattern: 'cake',
      actions: ['notify', { set_tweak: 'highlight' }],
    });
  });

  test('unknown rules, wrong kinds and bad actions', () => {
    assert.equal(error(setRuleEnabled({}, 'override', '.not.a.default.rule', true)).status, 404);
    assert.equal(error(setRuleActions({}, 'override', '.not.a.default.rule', ['notify'])).status, 404);
    assert.equal(error(setRuleActions({}, 'sender', '@bob:example.com', ['notify'])).status, 404);
    // A default rule addressed under the wrong kind does not exist there.
    assert.equal(error(setRuleEnabled({}, 'content', '.m.rule.master', true)).errcode, 'M_NOT_FOUND');
    assert.equal(error(setRuleActions({}, 'override', '.m.rule.master', ['bogus'])).errcode, 'M_BAD_JSON');
    assert.equal(error(setRuleEnabled({}, 'nope', 'x', true)).errcode, 'M_INVALID_PARAM');
  });
});
