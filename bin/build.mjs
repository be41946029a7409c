// Compiles src/ to dist/ when dist/ is missing or older than any source file.
// bin/myelin calls this before every start so a fresh clone (or an edited tree) never runs stale
// code; `npm ci` calls it through the `prepare` script so the first start is already fast.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.build-stamp');
const lock = join(root, 'dist.build-lock');

function newestSourceMtime() {
  let newest = 0;
  const visit = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  visit(join(root, 'src'));
  for (const file of ['tsconfig.json', 'tsconfig.build.json', 'package.json']) {
    newest = Math.max(newest, statSync(join(root, file)).mtimeMs);
  }
  return newest;
}

// The stamp holds the newest source time the build started from, not when it finished: a source
// edited while a build was running is newer than that, so the next start builds again.
function stampMtime() {
  try {
    const started = Number(readFileSync(stamp, 'utf8'));
    return Number.isFinite(started) ? started : -1;
  } catch {
    return -1;
  }
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function ensureBuilt({ quiet = false } = {}) {
  if (stampMtime() >= newestSourceMtime()) return;
  // Several processes may start at once (a supervisor and its workers, a test suite): one builds,
  // the others wait for its stamp.
  for (let waited = 0; ; waited += 100) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (waited > 120_000) rmSync(lock, { recursive: true, force: true });
      sleep(100);
      if (stampMtime() >= newestSourceMtime()) return;
    }
  }
  try {
    if (stampMtime() >= newestSourceMtime()) return;
    if (!quiet) process.stderr.write('myelin: compiling TypeScript sources into dist/ ...\n');
    const started = newestSourceMtime();
    rmSync(join(root, 'dist'), { recursive: true, force: true });
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
      stdio: 'inherit',
    });
    if (result.status !== 0) {
      process.stderr.write('myelin: the TypeScript build failed (see above)\n');
      process.exit(1);
    }
    writeFileSync(stamp, String(started));
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureBuilt();
