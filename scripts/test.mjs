// `npm test`: type-checks, builds dist/ (integration tests spawn bin/myelin), then runs every
// test file under test/ with Node's built-in runner. Extra arguments narrow the run to test files
// whose path contains one of them, e.g. `npm test -- core/canonical`.
//
// One PostgreSQL server serves the whole run (MYELIN_TEST_PG_SOCKET_DIR, see
// test/harness/postgres.ts): the many suites that run on both backends each create a database on
// it instead of every test file starting and stopping a server of its own.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from '../bin/build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--'));

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.ts')) found.push(path);
  }
  return found.sort();
}

const files = findTests(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((needle) => relative(root, f).includes(needle)),
);
if (files.length === 0) {
  console.error('no test files matched', filters);
  process.exit(2);
}

if (filters.length === 0) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const typecheck = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--noEmit'], {
    stdio: 'inherit',
  });
  if (typecheck.status !== 0) process.exit(typecheck.status ?? 1);
}
ensureBuilt();

let postgres;
if (!process.env.MYELIN_TEST_PG_SOCKET_DIR) {
  const { tsImport } = await import('tsx/esm/api');
  const { startPostgres } = await tsImport('../test/harness/postgres.ts', import.meta.url);
  postgres = await startPostgres({ maxConnections: 500 });
  process.env.MYELIN_TEST_PG_SOCKET_DIR = postgres.socketDir;
}
// Ctrl-C reaches the test run too; this process then stops the server and exits with its status.
process.on('SIGINT', () => undefined);

const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...passThrough, ...files], {
  stdio: 'inherit',
  cwd: root,
});
await postgres?.stop();
process.exit(result.status ?? 1);
