import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS, getRoomVersion } from '../../src/core/room-versions.js';

test('room versions 1–12 are stable and 12 is the default', () => {
  assert.deepEqual([...ROOM_VERSIONS.keys()], ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
  assert.ok([...ROOM_VERSIONS.values()].every((v) => v.stable));
  assert.equal(DEFAULT_ROOM_VERSION.id, '12');
  assert.equal(getRoomVersion('13'), undefined);
});

test('version flags follow the spec feature matrix', () => {
  const v = (id: string) => getRoomVersion(id)!;
  assert.equal(v('1').stateResolution, 'v1');
  assert.equal(v('2').stateResolution, 'v2');
  assert.equal(v('12').stateResolution, 'v2.1');
  assert.equal(v('3').eventIdFormat, 'v3');
  assert.equal(v('4').eventIdFormat, 'v4');
  assert.ok(!v('6').specialCaseAliasesAuth && v('5').specialCaseAliasesAuth);
  assert.ok(v('7').knocking && !v('6').knocking);
  assert.ok(v('8').restrictedJoins && !v('7').restrictedJoins);
  assert.ok(v('10').integerPowerLevels && !v('9').integerPowerLevels);
  assert.ok(v('11').creatorIsCreateSender && !v('10').creatorIsCreateSender);
  assert.ok(v('12').privilegedCreators && v('12').roomIdFromCreateEvent && !v('11').privilegedCreators);
});
