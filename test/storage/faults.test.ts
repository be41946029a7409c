// Which database errors pass (retried, or answered 503) and which are permanent: the table that
// both backends and every caller rely on.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DatabaseUnavailableError } from '../../src/storage/database.js';
import { asUnavailable, databaseFaultOf } from '../../src/storage/faults.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('passing faults by kind; everything else is permanent', () => {
  const cases: Array<[unknown, string | undefined]> = [
    // PostgreSQL SQLSTATEs
    [withCode('57P01', 'terminating connection due to administrator command'), 'unreachable'],
    [withCode('57P02'), 'unreachable'],
    [withCode('57P03', 'the database system is starting up'), 'unreachable'],
    [withCode('08006'), 'unreachable'],
    [withCode('53100', 'could not extend file: No space left on device'), 'resources'],
    [withCode('53300', 'sorry, too many clients already'), 'resources'],
    [withCode('40001'), 'conflict'],
    [withCode('40P01'), 'conflict'],
    [withCode('23505', 'duplicate key value violates unique constraint'), undefined],
    [withCode('42P01', 'relation "x" does not exist'), undefined],
    [withCode('28P01', 'password authentication failed'), undefined],
    [withCode('3D000', 'database "x" does not exist'), undefined],
    // sockets and the driver
    [withCode('ECONNREFUSED'), 'unreachable'],
    [withCode('ENOENT', 'connect ENOENT /run/postgresql/.s.PGSQL.5432'), 'unreachable'],
    [withCode('ECONNRESET'), 'unreachable'],
    [withCode('EPIPE'), 'unreachable'],
    [new Error('Connection terminated unexpectedly'), 'unreachable'],
    [new Error('Client has encountered a connection error and is not queryable'), 'unreachable'],
    [new Error('timeout exceeded when trying to connect'), 'busy'],
    [new Error('Connection terminated due to connection timeout', { cause: new Error('x') }), 'unreachable'],
    // SQLite result codes
    [withCode('SQLITE_BUSY'), 'busy'],
    [withCode('SQLITE_BUSY_SNAPSHOT'), 'busy'],
    [withCode('SQLITE_LOCKED'), 'busy'],
    [withCode('SQLITE_FULL'), 'resources'],
    [withCode('SQLITE_IOERR_WRITE'), 'resources'],
    [withCode('SQLITE_NOMEM'), 'resources'],
    [withCode('SQLITE_CONSTRAINT_UNIQUE'), undefined],
    [withCode('SQLITE_CORRUPT'), undefined],
    [withCode('SQLITE_ERROR', 'no such table: x'), undefined],
    // wrapped, and not errors at all
    [new Error('outer', { cause: withCode('ECONNREFUSED') }), 'unreachable'],
    [new DatabaseUnavailableError('busy', 'locked'), 'busy'],
    [new TypeError('a bug'), undefined],
    ['a string', undefined],
    [null, undefined],
  ];
  for (const [err, kind] of cases) assert.equal(databaseFaultOf(err), kind, String((err as Error)?.message ?? err));
});

test('asUnavailable wraps a passing fault with its cause and leaves a permanent error as it is', () => {
  const cause = withCode('57P01', 'terminating connection due to administrator command');
  const wrapped = asUnavailable(cause, 'unknown');
  assert.ok(wrapped instanceof DatabaseUnavailableError);
  assert.equal(wrapped.kind, 'unreachable');
  assert.equal(wrapped.committed, 'unknown');
  assert.equal(wrapped.cause, cause);
  assert.match(wrapped.message, /^database unreachable: terminating connection due to administrator command \(57P01\)$/);
  const permanent = withCode('23505');
  assert.equal(asUnavailable(permanent), permanent);
});
