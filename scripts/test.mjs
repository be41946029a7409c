// `npm test`: checks the formatting (prettier) and the lint (eslint), type-checks, builds dist/
// (integration tests spawn bin/myelin), then runs every test file under test/ with Node's built-in
// runner. Extra arguments narrow the run to test files whose path contains one of them, e.g.
// `npm test -- core/canonical`; such a run skips the checks of the whole repository.
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

/** Runs a tool of node_modules; a failure ends the run, saying which check failed and how to fix it. */
function check(what, script, args, fix) {
  const result = spawnSync(process.execPath, [join(root, 'node_modules', ...script), ...args], { stdio: 'inherit', cwd: root });
  if (result.status !== 0) {
    console.error(`npm test: ${what} failed${fix ? ` (${fix})` : ''}`);
    process.exit(result.status ?? 1);
  }
}

if (filters.length === 0) {
  check('the formatting check', ['prettier', 'bin', 'prettier.cjs'], ['--check', '--log-level=warn', '.'], '`npm run format` fixes it');
  check('the lint', ['eslint', 'bin', 'eslint.js'], ['.'], 'the problems are listed above; `npx eslint --fix .` fixes some');
  check('the type check', ['typescript', 'bin', 'tsc'], ['-p', join(root, 'tsconfig.json'), '--noEmit']);
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
