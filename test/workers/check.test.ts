// `myelin check` against real processes: a Redis server as the guide configures it, and the main
// process with its client and replication listeners on UNIX sockets.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { runMyelin, spawnMyelin, type MyelinProcess } from '../helpers/myelin.js';
import { freePort } from '../helpers/server-process.js';
import { tempDir } from '../helpers/tmp.js';
import { socketListener } from './fixture.js';

function lines(output: string): string[] {
  return output.split('\n').filter(Boolean);
}

describe('myelin check', () => {
  let redis: RedisServer;
  let main: MyelinProcess | undefined;
  let dir: string;
  let run: string;
  let configPath: string;

  const startMain = async () => {
    main = spawnMyelin(['start', '-c', configPath]);
    await main.waitFor(/Myelin is serving/);
  };

  before(async () => {
    redis = await startRedis();
    dir = tempDir('myelin-check-');
    run = join(dir, 'run');
    mkdirSync(run);
    writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
    configPath = join(dir, 'homeserver.yaml');
    writeFileSync(
      configPath,
      YAML.stringify({
        server_name: 'matrix.example.com',
        signing_key_path: join(dir, 'signing.key'),
        database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
        listeners: [socketListener(join(run, 'client.sock'), ['client']), socketListener(join(run, 'replication.sock'), ['replication'])],
        instance_map: { main: { path: join(run, 'replication.sock') } },
        worker_replication_secret: 'secret',
      }),
    );
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(join(dir, 'conf.d', 'redis.yaml'), YAML.stringify({ redis: { enabled: true, path: redis.socketPath } }));
    await startMain();
  });

  after(async () => {
    await main?.stop();
    await redis?.destroy();
  });

  test('passes on a healthy deployment, with one line per check', () => {
    const { status, stdout } = runMyelin(['check', '-c', configPath]);
    const out = lines(stdout);
    assert.equal(status, 0, stdout);
    assert.ok(
      out.every((l) => l.startsWith('✓ ') || l.startsWith('all ')),
      stdout,
    );
    const expect = (pattern: RegExp) =>
      assert.ok(
        out.some((l) => pattern.test(l)),
        `no line matching ${pattern} in:\n${stdout}`,
      );
    expect(/^✓ config: 2 file\(s\), 0 worker\(s\)$/);
    expect(new RegExp(`^✓ socket ${run}/client\\.sock \\(main listener \\(client\\)\\): mode 0660, owner \\S+, group \\S+$`));
    expect(
      new RegExp(
        `^✓ socket ${run}/replication\\.sock \\(main listener \\(replication\\), instance_map\\.main\\): mode 0660, owner \\S+, group ` +
          `\\S+$`,
      ),
    );
    expect(new RegExp(`^✓ socket ${redis.socketPath} \\(redis\\.path\\): mode 0770, owner \\S+, group \\S+$`));
    expect(new RegExp(`^✓ Redis at ${redis.socketPath}: answers PING$`));
    expect(/^✓ Redis TCP listener: off \(port 0\)/);
    expect(new RegExp(`^✓ replication listener of main \\(${run}/replication\\.sock\\): answers`));
    expect(new RegExp(`^✓ main /health on unix:${run}/client\\.sock: 200 OK$`));
    expect(new RegExp(`^✓ main /health on unix:${run}/replication\\.sock: 200 OK$`));
    expect(/^✓ database \(SQLite .*homeserver\.db\): reachable, schema version \d+ as this Myelin expects$/);
    expect(/^all \d+ checks passed$/);
  });

  test('a socket with the wrong mode fails, naming both modes', () => {
    chmodSync(join(run, 'client.sock'), 0o666);
    try {
      const { status, stdout } = runMyelin(['check', '-c', configPath]);
      assert.equal(status, 1, stdout);
      assert.match(
        stdout,
        new RegExp(`✗ socket ${run}/client\\.sock \\(main listener \\(client\\)\\): mode 0666, expected 0660; owner \\S+, group \\S+`),
      );
      assert.match(stdout, /1 of \d+ checks failed/);
    } finally {
      chmodSync(join(run, 'client.sock'), 0o660);
    }
  });

  test('Redis down, main down: each failure on its own line, exit status 1', async () => {
    await redis.stop();
    await main!.stop();
    main = undefined;
    try {
      const { status, stdout } = runMyelin(['check', '-c', configPath]);
      assert.equal(status, 1, stdout);
      assert.match(stdout, new RegExp(`✗ socket ${run}/client\\.sock \\(main listener \\(client\\)\\): does not exist`));
      assert.match(stdout, new RegExp(`✗ Redis at ${redis.socketPath}: not answering \\((ENOENT|ECONNREFUSED)\\)`));
      assert.match(stdout, new RegExp(`✗ replication listener of main \\(${run}/replication\\.sock\\): not answering`));
      assert.match(stdout, new RegExp(`✗ main /health on unix:${run}/client\\.sock: not answering \\(ENOENT\\)`));
      assert.match(stdout, /✓ database \(SQLite/, 'the database is still there');
    } finally {
      await redis.start();
      await startMain();
    }
  });

  test('Redis that also listens on TCP fails the check', async () => {
    const port = await freePort();
    const socket = join(tempDir('myelin-redis-tcp-'), 'redis.sock');
    const server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--unixsocket', socket, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
      const other = join(dir, 'conf.d', 'zz-redis-tcp.yaml');
      writeFileSync(other, YAML.stringify({ redis: { enabled: true, path: socket } }));
      try {
        const { status, stdout } = runMyelin(['check', '-c', configPath]);
        assert.equal(status, 1, stdout);
        assert.match(stdout, new RegExp(`✗ Redis TCP listener: Redis also listens on TCP port ${port}; set \`port 0\` in redis.conf`));
      } finally {
        rmSync(other);
      }
    } finally {
      server.kill();
    }
  });

  test('a configuration with problems is reported as such, and nothing else is checked', () => {
    const bad = join(tempDir(), 'homeserver.yaml');
    writeFileSync(bad, YAML.stringify({ server_name: 'x', stream_writers: { typing: ['a', 'b'] } }));
    const { status, stdout } = runMyelin(['check', '-c', bad]);
    assert.equal(status, 1);
    assert.match(
      stdout,
      /✗ config: .*homeserver\.yaml: stream_writers\.typing: Must only specify one instance to handle `typing` messages\./,
    );
    assert.match(stdout, /nothing else was checked/);
  });
});
