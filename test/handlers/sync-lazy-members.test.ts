// The record of lazily loaded member events a device holds, by the sync token it holds them at.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SentMembersLedger } from '../../src/handlers/sync/lazy-members.js';

const NONE: ReadonlySet<string> = new Set();

test('a device holds what was sent along the chain of tokens that led to its since, and nothing after it', () => {
  const ledger = new SentMembersLedger();
  ledger.record('@a:x', 'D', 's1', NONE, new Set(['$alice']));
  const atS1 = ledger.heldAt('@a:x', 'D', 's1');
  ledger.record('@a:x', 'D', 's2', atS1, new Set(['$bob']));
  assert.deepEqual([...ledger.heldAt('@a:x', 'D', 's2')].sort(), ['$alice', '$bob']);
  // Resuming from s1 (a reload, or a response lost on the way): bob's member event is not held.
  assert.deepEqual([...ledger.heldAt('@a:x', 'D', 's1')], ['$alice']);
  // No since, an unknown token, another device or user: nothing is held.
  assert.equal(ledger.heldAt('@a:x', 'D', undefined).size, 0);
  assert.equal(ledger.heldAt('@a:x', 'D', 's0').size, 0);
  assert.equal(ledger.heldAt('@a:x', 'E', 's2').size, 0);
  assert.equal(ledger.heldAt('@b:x', 'D', 's2').size, 0);
});

test('a response that sends nothing new shares its since record; records are never changed once made', () => {
  const ledger = new SentMembersLedger();
  ledger.record('@a:x', 'D', 's1', NONE, new Set(['$alice']));
  const atS1 = ledger.heldAt('@a:x', 'D', 's1');
  ledger.record('@a:x', 'D', 's2', atS1, new Set(['$alice']));
  assert.equal(ledger.heldAt('@a:x', 'D', 's2'), atS1);
  ledger.record('@a:x', 'D', 's3', atS1, new Set(['$carol']));
  assert.deepEqual([...atS1], ['$alice']);
});

test('a device keeps its newest few tokens; a record forgets its oldest events past its bound', () => {
  const ledger = new SentMembersLedger();
  let held: ReadonlySet<string> = NONE;
  for (let i = 1; i <= 5; i++) {
    ledger.record('@a:x', 'D', `s${i}`, held, new Set([`$m${i}`]));
    held = ledger.heldAt('@a:x', 'D', `s${i}`);
  }
  assert.equal(ledger.heldAt('@a:x', 'D', 's1').size, 0, 'the oldest token is forgotten');
  assert.equal(ledger.heldAt('@a:x', 'D', 's5').size, 5);

  const many = new Set(Array.from({ length: 600 }, (_, i) => `$e${i}`));
  ledger.record('@a:x', 'D', 'big', NONE, many);
  const big = ledger.heldAt('@a:x', 'D', 'big');
  assert.equal(big.size, 500);
  assert.ok(!big.has('$e0') && big.has('$e599'), 'the newest are kept');
});
