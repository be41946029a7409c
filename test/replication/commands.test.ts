import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CommandEncodeError,
  CommandParseError,
  decodeCommand,
  encodeCommand,
  isBusCommand,
  type ReplicationCommand,
} from '../../src/replication/commands.js';

function roundTrip(command: ReplicationCommand, line: string): void {
  assert.equal(encodeCommand(command), line);
  assert.deepEqual(decodeCommand(line), command);
}

describe('replication commands', () => {
  it('NAME, REPLICATE, PING and REMOTE_SERVER_UP', () => {
    roundTrip({ name: 'NAME', instance: 'worker1' }, 'NAME worker1');
    roundTrip({ name: 'REPLICATE' }, 'REPLICATE');
    roundTrip({ name: 'PING', data: '1490197665618' }, 'PING 1490197665618');
    roundTrip({ name: 'REMOTE_SERVER_UP', server: 'other.example.org' }, 'REMOTE_SERVER_UP other.example.org');
    // Synapse writes `REPLICATE ` with a trailing space.
    assert.deepEqual(decodeCommand('REPLICATE '), { name: 'REPLICATE' });
  });

  it('POSITION carries the previous and the new token', () => {
    roundTrip(
      { name: 'POSITION', stream: 'events', instance: 'persister1', prevToken: 53, newToken: 58 },
      'POSITION events persister1 53 58',
    );
  });

  it('RDATA rows keep spaces and non-ASCII text, and batch tokens', () => {
    const row = { stream: 'events', roomId: '!room:example.org', eventId: '$a b', type: 'm.room.message', sender: '@zoë:example.org' };
    roundTrip({ name: 'RDATA', stream: 'events', instance: 'main', token: 'batch', row }, `RDATA events main batch ${JSON.stringify(row)}`);
    const typing = { stream: 'typing', roomId: '!r:x', userIds: ['@日本語:example.org', '@a b:x', '@emoji🎉:x'] };
    const line = encodeCommand({ name: 'RDATA', stream: 'typing', instance: 'main', token: 7, row: typing });
    assert.ok(!line.includes('\n'));
    assert.deepEqual(decodeCommand(line), { name: 'RDATA', stream: 'typing', instance: 'main', token: 7, row: typing });
  });

  it('RDATA rows with newlines and separators stay on one line', () => {
    const row = { stream: 'account_data', userId: '@u:x', type: 'line\nbreak\r\u2028\u2029' };
    const line = encodeCommand({ name: 'RDATA', stream: 'account_data', instance: 'w', token: 3, row });
    assert.ok(!/[\r\n]/.test(line));
    assert.deepEqual(decodeCommand(line), { name: 'RDATA', stream: 'account_data', instance: 'w', token: 3, row });
  });

  it('USER_SYNC has Synapse fields, with None for a missing device', () => {
    roundTrip(
      {
        name: 'USER_SYNC',
        instanceId: 'worker1',
        userId: '@alice:example.org',
        deviceId: 'DEV',
        isSyncing: true,
        lastSyncMs: 1700000000000,
      },
      'USER_SYNC worker1 @alice:example.org DEV start 1700000000000',
    );
    roundTrip(
      { name: 'USER_SYNC', instanceId: 'worker1', userId: '@alice:example.org', deviceId: null, isSyncing: false, lastSyncMs: 5 },
      'USER_SYNC worker1 @alice:example.org None end 5',
    );
  });

  it('CLEAR_USER_SYNC and FEDERATION_ACK', () => {
    roundTrip({ name: 'CLEAR_USER_SYNC', instanceId: 'worker1' }, 'CLEAR_USER_SYNC worker1');
    roundTrip({ name: 'FEDERATION_ACK', instance: 'federation_sender1', token: 991 }, 'FEDERATION_ACK federation_sender1 991');
  });

  it('USER_IP carries access token, ip, user agent, device and last seen as a JSON array', () => {
    roundTrip(
      {
        name: 'USER_IP',
        userId: '@alice:example.org',
        accessToken: 'syt_abc',
        ip: '10.0.0.1',
        userAgent: 'Mozilla/5.0 (X11; Linux) Élément',
        deviceId: null,
        lastSeen: 1700000000000,
      },
      'USER_IP @alice:example.org ["syt_abc","10.0.0.1","Mozilla/5.0 (X11; Linux) Élément",null,1700000000000]',
    );
  });

  it('INVALIDATE_TOKENS carries token hashes as JSON; anything else is refused', () => {
    roundTrip({ name: 'INVALIDATE_TOKENS', tokenHashes: ['aGFzaDE', 'aGFzaDI'] }, 'INVALIDATE_TOKENS ["aGFzaDE","aGFzaDI"]');
    assert.equal(isBusCommand(decodeCommand('INVALIDATE_TOKENS []')), true);
    for (const line of ['INVALIDATE_TOKENS', 'INVALIDATE_TOKENS {"a":1}', 'INVALIDATE_TOKENS [1]', 'INVALIDATE_TOKENS [']) {
      assert.throws(() => decodeCommand(line), CommandParseError, line);
    }
  });

  it('tells stream commands from the ones the bus only delivers', () => {
    assert.equal(isBusCommand(decodeCommand('USER_SYNC w @u:x None start 1')), true);
    assert.equal(isBusCommand(decodeCommand('REMOTE_SERVER_UP x')), true);
    assert.equal(isBusCommand(decodeCommand('POSITION events w 1 2')), false);
  });

  it('rejects malformed lines with a CommandParseError', () => {
    const bad = [
      '',
      '   ',
      'HELLO world',
      'POSITION events main 1',
      'POSITION events main 1 two',
      'POSITION events main 1 2 3',
      'POSITION events main 1.5 2',
      'RDATA events main 5',
      'RDATA events main five {}',
      'RDATA events main 5 {not json',
      'USER_SYNC w @u:x DEV maybe 1',
      'USER_SYNC w @u:x start 1',
      'FEDERATION_ACK w',
      'USER_IP @u:x ["t","ip"]',
      'USER_IP @u:x ["t","ip","ua",null,"soon"]',
      'USER_IP @u:x',
      'NAME',
      'CLEAR_USER_SYNC a b',
      'POSITION events main 99999999999999999 1',
    ];
    for (const line of bad) assert.throws(() => decodeCommand(line), CommandParseError, line);
  });

  it('refuses to encode fields that would break the line', () => {
    assert.throws(() => encodeCommand({ name: 'NAME', instance: 'two words' }), CommandEncodeError);
    assert.throws(
      () => encodeCommand({ name: 'POSITION', stream: 'events', instance: 'w', prevToken: 1.5, newToken: 2 }),
      CommandEncodeError,
    );
    assert.throws(() => encodeCommand({ name: 'RDATA', stream: 'events', instance: 'w\n', token: 1, row: {} }), CommandEncodeError);
    assert.throws(() => encodeCommand({ name: 'RDATA', stream: 'events', instance: 'w', token: 1, row: undefined }), CommandEncodeError);
    assert.throws(() => encodeCommand({ name: 'PING', data: 'a\nb' }), CommandEncodeError);
  });
});
