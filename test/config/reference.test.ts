import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { configReference } from '../../src/config/reference.js';
import { README, withGeneratedSections } from '../../scripts/update-docs.js';

test('the configuration reference lists every key of the schema with its description', () => {
  const reference = configReference();
  for (const key of [
    'server_name',
    'listeners',
    'database.args.host',
    'redis.path',
    'instance_map.<name>.path',
    'stream_writers.events',
    'worker_app',
    'worker_listeners',
  ]) {
    assert.ok(reference.includes(`\`${key}\``), `missing ${key}`);
  }
  assert.match(reference, /\| `mode` \| .* \| File mode of the UNIX socket \(octal\)/);
});

test('README.md carries the current configuration reference (run `npm run docs` after changing the schema)', () => {
  const readme = readFileSync(README, 'utf8');
  assert.equal(readme, withGeneratedSections(readme));
});
