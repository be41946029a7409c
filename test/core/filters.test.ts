import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_FILTER,
  DEFAULT_FILTER_LIMIT,
  DEFAULT_MAX_TIMELINE_LIMIT,
  InvalidFilterError,
  applyEventFields,
  eventMatchesFilter,
  filterBlocksAll,
  includeRedundantMembers,
  lazyLoadMembers,
  matchesTypePattern,
  parseFilter,
  parseRoomEventFilter,
  parseSyncFilterParam,
  roomAllowed,
  splitPropertyPath,
  timelineLimit,
  unreadThreadNotifications,
} from '../../src/core/filters.js';

function assertBadFilter(json: unknown, errcode = 'M_BAD_JSON'): void {
  assert.throws(
    () => parseFilter(json),
    (e: unknown) => e instanceof InvalidFilterError && e.status === 400 && e.errcode === errcode,
    JSON.stringify(json),
  );
}

const ROOM = '!room:a.test';
const OTHER_ROOM = '!other:a.test';

describe('parseFilter: defaults', () => {
  test('the empty filter', () => {
    const f = parseFilter({});
    assert.deepEqual(f, DEFAULT_FILTER);
    assert.equal(f.eventFormat, 'client');
    assert.equal(f.eventFields, undefined);
    assert.equal(f.room.includeLeave, false);
    assert.equal(f.room.rooms, undefined);
    assert.deepEqual(f.room.notRooms, []);
    for (const section of [f.room.timeline, f.room.state, f.room.ephemeral, f.room.accountData]) {
      assert.equal(section.limit, DEFAULT_FILTER_LIMIT);
      assert.equal(section.types, undefined);
      assert.deepEqual(section.notTypes, []);
      assert.equal(section.senders, undefined);
      assert.deepEqual(section.notSenders, []);
      assert.equal(section.rooms, undefined);
      assert.deepEqual(section.notRooms, []);
      assert.equal(section.containsUrl, undefined);
      assert.equal(section.lazyLoadMembers, false);
      assert.equal(section.includeRedundantMembers, false);
      assert.equal(section.unreadThreadNotifications, false);
    }
    for (const section of [f.presence, f.accountData]) {
      assert.equal(section.limit, 10);
      assert.equal(section.types, undefined);
    }
    assert.equal(timelineLimit(f), 10);
  });

  test('the result is frozen and does not alias the input', () => {
    const input = { room: { timeline: { types: ['m.room.message'] } } };
    const f = parseFilter(input);
    assert.ok(Object.isFrozen(f));
    assert.ok(Object.isFrozen(f.room));
    assert.ok(Object.isFrozen(f.room.timeline));
    assert.ok(Object.isFrozen(f.room.timeline.types));
    input.room.timeline.types.push('m.room.topic');
    assert.deepEqual(f.room.timeline.types, ['m.room.message']);
  });

  test("Synapse's valid filters round-trip with their values and defaults", () => {
    const f = parseFilter({
      room: {
        timeline: { limit: 20 },
        state: { not_types: ['m.room.member'] },
        ephemeral: { limit: 0, not_types: ['*'] },
        include_leave: false,
        rooms: ['!dee:pik-test'],
        not_rooms: ['!gee:pik-test'],
        account_data: { limit: 0, types: ['*'] },
      },
    });
    assert.equal(f.room.timeline.limit, 20);
    assert.deepEqual(f.room.state.notTypes, ['m.room.member']);
    assert.equal(f.room.state.limit, 10);
    assert.equal(f.room.ephemeral.limit, 0);
    assert.deepEqual(f.room.rooms, ['!dee:pik-test']);
    assert.deepEqual(f.room.notRooms, ['!gee:pik-test']);
    assert.deepEqual(f.room.accountData.types, ['*']);

    const g = parseFilter({
      room: {
        state: { types: ['m.room.*'], not_rooms: ['!726s6s6q:example.com'] },
        timeline: {
          limit: 10,
          types: ['m.room.message'],
          not_rooms: ['!726s6s6q:example.com'],
          not_senders: ['@spam:example.com'],
          'org.matrix.labels': ['#fun'],
        },
        ephemeral: { types: ['m.receipt', 'm.typing'], not_senders: ['@spam:example.com'] },
      },
      presence: { types: ['m.presence'], not_senders: ['@alice:example.com'] },
      event_format: 'client',
      event_fields: ['type', 'content', 'sender'],
    });
    assert.deepEqual(g.room.timeline.notSenders, ['@spam:example.com']);
    assert.deepEqual(g.presence.notSenders, ['@alice:example.com']);
    assert.deepEqual(g.eventFields, ['type', 'content', 'sender']);

    assert.deepEqual(parseFilter({ event_fields: ['foo\\.bar'] }).eventFields, ['foo\\.bar']);
    assert.equal(parseFilter({ event_format: 'federation' }).eventFormat, 'federation');
    // A v12 room id (no server part) is a room id too.
    const v12Room = `!${'A'.repeat(43)}`;
    assert.deepEqual(parseFilter({ room: { rooms: [v12Room] } }).room.rooms, [v12Room]);
  });

  test('unknown keys are ignored at every level', () => {
    for (const json of [
      { 'org.matrix.msc9999.future_option': true },
      { presence: { 'org.matrix.msc9999.future_option': true } },
      { room: { 'org.matrix.msc9999.future_option': true } },
      { room: { timeline: { 'org.matrix.msc9999.future_option': true } } },
    ]) {
      assert.deepEqual(parseFilter(json), DEFAULT_FILTER);
    }
  });

  test('lazy loading, redundant members and thread notifications', () => {
    const f = parseFilter({
      room: {
        state: { lazy_load_members: true, include_redundant_members: true },
        timeline: { unread_thread_notifications: true },
      },
    });
    assert.equal(lazyLoadMembers(f), true);
    assert.equal(includeRedundantMembers(f), true);
    assert.equal(unreadThreadNotifications(f), true);
    // include_redundant_members means nothing without lazy loading.
    assert.equal(includeRedundantMembers(parseFilter({ room: { state: { include_redundant_members: true } } })), false);
    // The MSC3773 unstable name; the stable one wins when both are given.
    const unstable = parseFilter({ room: { timeline: { 'org.matrix.msc3773.unread_thread_notifications': true } } });
    assert.equal(unreadThreadNotifications(unstable), true);
    const both = parseFilter({
      room: {
        timeline: { unread_thread_notifications: false, 'org.matrix.msc3773.unread_thread_notifications': true },
      },
    });
    assert.equal(unreadThreadNotifications(both), false);
  });

  test('an empty event_fields list means every field', () => {
    assert.equal(parseFilter({ event_fields: [] }).eventFields, undefined);
  });
});

describe('parseFilter: limits', () => {
  test('0 is accepted (bots use timeline limit 0 to fetch only a token)', () => {
    assert.equal(parseFilter({ room: { timeline: { limit: 0 } } }).room.timeline.limit, 0);
  });

  test('the timeline limit is capped at 100 by default', () => {
    assert.equal(DEFAULT_MAX_TIMELINE_LIMIT, 100);
    assert.equal(parseFilter({ room: { timeline: { limit: 100 } } }).room.timeline.limit, 100);
    assert.equal(parseFilter({ room: { timeline: { limit: 5000 } } }).room.timeline.limit, 100);
    // Only the timeline is capped, as Synapse.
    assert.equal(parseFilter({ room: { state: { limit: 5000 } } }).room.state.limit, 5000);
  });

  test('the cap is configurable, and negative means none', () => {
    assert.equal(parseFilter({ room: { timeline: { limit: 50 } } }, { maxTimelineLimit: 20 }).room.timeline.limit, 20);
    assert.equal(parseFilter({ room: { timeline: { limit: 5000 } } }, { maxTimelineLimit: -1 }).room.timeline.limit, 5000);
    assert.equal(parseFilter({}, { maxTimelineLimit: 5 }).room.timeline.limit, 5);
  });
});

describe('parseFilter: invalid filters are 400 M_BAD_JSON', () => {
  const cases: Array<[string, unknown]> = [
    // Synapse's test_errors_on_invalid_filters.
    ['account_data must be an object', { account_data: 'Hello World' }],
    ['event_format must be client or federation', { event_format: 'other' }],
    ['not_rooms must hold room ids', { room: { not_rooms: ['#foo:pik-test'] } }],
    ['senders must hold user ids', { presence: { senders: ['@bar;pik.test.com'] } }],
    // Lazy-loading flags are strictly boolean.
    ['lazy_load_members as a string', { room: { state: { lazy_load_members: 'true' } } }],
    ['lazy_load_members as a number', { room: { state: { lazy_load_members: 1 } } }],
    ['include_redundant_members as null', { room: { state: { include_redundant_members: null } } }],
    ['include_leave as a string', { room: { include_leave: 'yes' } }],
    ['contains_url as a number', { room: { timeline: { contains_url: 1 } } }],
    ['unread_thread_notifications as a string', { room: { timeline: { unread_thread_notifications: 'y' } } }],
    // Limits.
    ['a negative limit', { room: { timeline: { limit: -1 } } }],
    ['a fractional limit', { room: { timeline: { limit: 2.5 } } }],
    ['a string limit', { room: { timeline: { limit: '10' } } }],
    ['a negative presence limit', { presence: { limit: -5 } }],
    ['an unsafe integer limit', { room: { state: { limit: 2 ** 60 } } }],
    // Lists of the wrong shape.
    ['types as a string', { room: { timeline: { types: 'm.room.message' } } }],
    ['not_types holding a number', { room: { timeline: { not_types: [1] } } }],
    ['senders as an object', { room: { timeline: { senders: { '@a:b.test': true } } } }],
    ['rooms holding a user id', { room: { rooms: ['@a:b.test'] } }],
    ['room timeline rooms holding garbage', { room: { timeline: { rooms: ['nope'] } } }],
    ['event_fields holding a number', { event_fields: ['type', 3] }],
    ['event_fields as a string', { event_fields: 'type' }],
    // Sub-filters of the wrong type.
    ['room as an array', { room: [] }],
    ['room.timeline as a string', { room: { timeline: 'x' } }],
    ['presence as null', { presence: null }],
    // Not an object at all.
    ['an array', []],
    ['a string', 'filter'],
    ['null', null],
  ];
  for (const [name, json] of cases) test(name, () => assertBadFilter(json));
});

describe('parseRoomEventFilter', () => {
  test('validates and defaults like a sync sub-filter', () => {
    const f = parseRoomEventFilter({ lazy_load_members: true, types: ['m.room.message'] });
    assert.equal(f.lazyLoadMembers, true);
    assert.equal(f.limit, 10);
    assert.throws(() => parseRoomEventFilter({ lazy_load_members: 'yes' }), InvalidFilterError);
    assert.throws(() => parseRoomEventFilter([]), InvalidFilterError);
  });
});

describe('parseSyncFilterParam', () => {
  test('an id is passed through', () => {
    assert.deepEqual(parseSyncFilterParam('12'), { kind: 'id', id: '12' });
  });
  test('inline JSON is parsed and validated', () => {
    const r = parseSyncFilterParam('{"room":{"timeline":{"limit":8}}}');
    assert.equal(r.kind, 'inline');
    assert.equal(r.kind === 'inline' && r.filter.room.timeline.limit, 8);
  });
  test('broken inline JSON is M_NOT_JSON; an invalid filter M_BAD_JSON', () => {
    assert.throws(
      () => parseSyncFilterParam('{"room":'),
      (e: unknown) => e instanceof InvalidFilterError && e.status === 400 && e.errcode === 'M_NOT_JSON',
    );
    assert.throws(
      () => parseSyncFilterParam('{"room":{"timeline":{"limit":-1}}}'),
      (e: unknown) => e instanceof InvalidFilterError && e.errcode === 'M_BAD_JSON',
    );
  });
});

describe('matchesTypePattern', () => {
  const cases: Array<[string, string, boolean]> = [
    ['m.room.message', 'm.room.message', true],
    ['m.room.message', 'm.room.messages', false],
    ['m.room.message', 'm.*', true],
    ['m.room.message', '*', true],
    ['', '*', true],
    ['m.room.message', 'org.*', false],
    ['m.room.message', '*.message', true],
    ['m.room.message', 'm.*.message', true],
    ['m.room.message', 'm.*.topic', false],
    ['m.room.message', 'm.*room*age', true],
    ['m.room.message', 'm.*x*', false],
    ['ab', 'a*b*', true],
    ['a', 'a*a', false],
    ['aa', 'a*a', true],
    ['m.room.message', 'm.room.message*', true],
    // A star is the only special character.
    ['m.room.message', 'm.room.messag?', false],
    ['m.xroom', 'm.[x]room', false],
  ];
  for (const [value, pattern, expected] of cases) {
    test(`${JSON.stringify(value)} ~ ${JSON.stringify(pattern)} → ${expected}`, () => {
      assert.equal(matchesTypePattern(value, pattern), expected);
    });
  }
});

describe('eventMatchesFilter', () => {
  const msg = { type: 'm.room.message', sender: '@foo:bar', roomId: '!foo:bar', content: { body: 'hi' } };
  const timeline = (json: object) => parseFilter({ room: { timeline: json } }).room.timeline;

  // Synapse's FilteringTestCase cases, re-expressed.
  test('types: literals, wildcards, unknowns', () => {
    assert.equal(eventMatchesFilter(timeline({ types: ['m.room.message', 'org.matrix.foo.bar'] }), msg), true);
    assert.equal(eventMatchesFilter(timeline({ types: ['m.*', 'org.matrix.foo.bar'] }), msg), true);
    assert.equal(
      eventMatchesFilter(timeline({ types: ['m.room.message', 'org.matrix.foo.bar'] }), {
        ...msg,
        type: 'now.for.something.completely.different',
      }),
      false,
    );
  });

  test('not_types: literals, wildcards, unknowns', () => {
    assert.equal(eventMatchesFilter(timeline({ not_types: ['m.room.message', 'org.matrix.foo.bar'] }), msg), false);
    assert.equal(
      eventMatchesFilter(timeline({ not_types: ['m.room.message', 'org.matrix.*'] }), {
        ...msg,
        type: 'org.matrix.custom.event',
      }),
      false,
    );
    assert.equal(eventMatchesFilter(timeline({ not_types: ['m.*', 'org.*'] }), { ...msg, type: 'com.nom.nom.nom' }), true);
  });

  test('not_types wins over types', () => {
    const f = timeline({ not_types: ['m.*', 'org.*'], types: ['m.room.message', 'm.room.topic'] });
    assert.equal(eventMatchesFilter(f, { ...msg, type: 'm.room.topic' }), false);
  });

  test('senders and not_senders', () => {
    assert.equal(eventMatchesFilter(timeline({ senders: ['@flibble:wibble'] }), { ...msg, sender: '@flibble:wibble' }), true);
    assert.equal(eventMatchesFilter(timeline({ senders: ['@flibble:wibble'] }), msg), false);
    assert.equal(eventMatchesFilter(timeline({ not_senders: ['@flibble:wibble'] }), { ...msg, sender: '@flibble:wibble' }), false);
    assert.equal(eventMatchesFilter(timeline({ not_senders: ['@flibble:wibble'] }), msg), true);
    // not_senders wins.
    assert.equal(eventMatchesFilter(timeline({ senders: ['@foo:bar'], not_senders: ['@foo:bar'] }), msg), false);
    // No sender (account data): a senders list never matches it; not_senders never excludes it.
    assert.equal(eventMatchesFilter(timeline({ senders: ['@foo:bar'] }), { type: 'm.tag' }), false);
    assert.equal(eventMatchesFilter(timeline({ not_senders: ['@foo:bar'] }), { type: 'm.tag' }), true);
  });

  test('rooms and not_rooms', () => {
    assert.equal(eventMatchesFilter(timeline({ rooms: ['!foo:bar'] }), msg), true);
    assert.equal(eventMatchesFilter(timeline({ rooms: ['!other:bar'] }), msg), false);
    assert.equal(eventMatchesFilter(timeline({ not_rooms: ['!foo:bar'] }), msg), false);
    assert.equal(eventMatchesFilter(timeline({ rooms: ['!foo:bar'], not_rooms: ['!foo:bar'] }), msg), false);
  });

  test('contains_url', () => {
    const withUrl = { ...msg, content: { url: 'mxc://a/b' } };
    const nonStringUrl = { ...msg, content: { url: 3 } };
    assert.equal(eventMatchesFilter(timeline({ contains_url: true }), withUrl), true);
    assert.equal(eventMatchesFilter(timeline({ contains_url: true }), msg), false);
    assert.equal(eventMatchesFilter(timeline({ contains_url: true }), nonStringUrl), false);
    assert.equal(eventMatchesFilter(timeline({ contains_url: false }), withUrl), false);
    assert.equal(eventMatchesFilter(timeline({ contains_url: false }), msg), true);
    assert.equal(eventMatchesFilter(timeline({}), withUrl), true);
  });

  test('presence and global account data filters ignore rooms', () => {
    const f = parseFilter({ presence: { types: ['m.presence'], not_senders: ['@alice:example.com'] } }).presence;
    assert.equal(eventMatchesFilter(f, { type: 'm.presence', sender: '@bob:example.com' }), true);
    assert.equal(eventMatchesFilter(f, { type: 'm.presence', sender: '@alice:example.com' }), false);
  });

  test('the default filter matches everything', () => {
    assert.equal(eventMatchesFilter(DEFAULT_FILTER.room.timeline, msg), true);
    assert.equal(eventMatchesFilter(DEFAULT_FILTER.accountData, { type: 'm.direct' }), true);
  });
});

describe('roomAllowed and filterBlocksAll', () => {
  test('room lists', () => {
    const f = parseFilter({ room: { rooms: [ROOM, OTHER_ROOM], not_rooms: [OTHER_ROOM] } }).room;
    assert.equal(roomAllowed(f, ROOM), true);
    assert.equal(roomAllowed(f, OTHER_ROOM), false);
    assert.equal(roomAllowed(f, '!third:a.test'), false);
    assert.equal(roomAllowed(DEFAULT_FILTER.room, '!third:a.test'), true);
  });

  test('filters that can match nothing', () => {
    const t = (json: object) => parseFilter({ room: { timeline: json } }).room.timeline;
    assert.equal(filterBlocksAll(t({ types: [] })), true);
    assert.equal(filterBlocksAll(t({ not_types: ['*'] })), true);
    assert.equal(filterBlocksAll(t({ senders: [] })), true);
    assert.equal(filterBlocksAll(t({ rooms: [] })), true);
    assert.equal(filterBlocksAll(t({ types: ['m.*'] })), false);
    assert.equal(filterBlocksAll(t({})), false);
    assert.equal(filterBlocksAll(parseFilter({ presence: { types: [] } }).presence), true);
  });
});

describe('event_fields', () => {
  test('splitPropertyPath: escapes', () => {
    const cases: Array<[string, string[]]> = [
      ['m', ['m']],
      ['m.foo', ['m', 'foo']],
      ['m.foo.bar', ['m', 'foo', 'bar']],
      ['m\\.foo', ['m.foo']],
      ['m\\\\.foo', ['m\\', 'foo']],
      ['m\\\\\\.foo', ['m\\.foo']],
      ['m\\\\\\\\.foo', ['m\\\\', 'foo']],
      ['m\\foo', ['m\\foo']],
      ['m\\\\foo', ['m\\foo']],
      ['m\\\\\\foo', ['m\\\\foo']],
      ['content.m\\.relates_to', ['content', 'm.relates_to']],
    ];
    for (const [path, expected] of cases) assert.deepEqual(splitPropertyPath(path), expected, path);
  });

  const event = {
    event_id: '$e',
    type: 'm.room.message',
    sender: '@a:b.test',
    origin_server_ts: 1,
    content: {
      body: 'hello',
      msgtype: 'm.text',
      'm.relates_to': { rel_type: 'm.thread', event_id: '$root' },
      nested: { deep: { value: 1 } },
    },
    unsigned: { age: 5 },
  };

  test('keeps only the listed paths', () => {
    assert.deepEqual(applyEventFields(event, ['type', 'content.body', 'sender']), {
      type: 'm.room.message',
      content: { body: 'hello' },
      sender: '@a:b.test',
    });
  });

  test('escaped dots reach keys containing dots', () => {
    assert.deepEqual(applyEventFields(event, ['content.m\\.relates_to.rel_type']), {
      content: { 'm.relates_to': { rel_type: 'm.thread' } },
    });
  });

  test('missing paths and paths through non-objects are skipped', () => {
    assert.deepEqual(applyEventFields(event, ['content.nope', 'content.body.length', 'state_key', 'type']), {
      type: 'm.room.message',
    });
  });

  test('absent or empty list: the event itself', () => {
    assert.equal(applyEventFields(event, undefined), event);
    assert.equal(applyEventFields(event, []), event);
  });

  test('never writes into the source event, whatever the order of paths', () => {
    const before = JSON.stringify(event);
    const a = applyEventFields(event, ['content', 'content.nested.deep.value', 'unsigned.age']);
    const b = applyEventFields(event, ['content.nested.deep.value', 'content']);
    assert.equal(JSON.stringify(event), before);
    assert.deepEqual(a.content, event.content);
    assert.deepEqual(b.content, event.content);
    assert.deepEqual(applyEventFields(event, ['content.nested.deep.value', 'content.body']), {
      content: { nested: { deep: { value: 1 } }, body: 'hello' },
    });
  });
});
