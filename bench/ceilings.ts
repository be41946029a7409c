// The machine's ceilings (group `ceilings`), measured in the same run as every other figure so
// each can be read as a ratio: raw Node HTTP keep-alive requests/s, SQLite and PostgreSQL
// single-row commits/s, and ed25519 signatures/s through node:crypto.

import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Pool } from 'undici';
import { startPostgres } from '../test/harness/postgres.js';
import { figure, measureConcurrentRate, measureRate, median, type Figure } from './harness.js';

const GROUP = 'ceilings';

export async function measureHttpCeiling(): Promise<Figure> {
  // The server runs in its own process with a trivial handler; this process is the client.
  const server = spawn(
    process.execPath,
    [
      '-e',
      `const http = require('node:http');
       const s = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => {
         res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
         res.end('{}');
       });
       s.listen(0, '127.0.0.1', () => process.send(s.address().port));`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const port = await new Promise<number>((r) => server.once('message', (m) => r(m as number)));
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32, pipelining: 1 });
  try {
    const rounds: number[] = [];
    for (let i = 0; i < 3; i++) {
      rounds.push(
        await measureConcurrentRate(
          2000,
          async () => {
            const res = await pool.request({ path: '/', method: 'GET' });
            await res.body.text();
            return 1;
          },
          32,
        ),
      );
    }
    return figure(GROUP, 'raw Node HTTP keep-alive (32 connections)', Math.round(median(rounds)), 'requests/s');
  } finally {
    await pool.close();
    server.kill();
  }
}

export function measureSqliteCeiling(): Figure {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-bench-sqlite-'));
  const db = new BetterSqlite3(join(dir, 'bench.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const value = 'x'.repeat(200);
    const rate = measureRate(() => {
      for (let i = 0; i < 100; i++) insert.run(value);
      return 100;
    });
    return figure(GROUP, 'SQLite single-row commits (WAL, synchronous=NORMAL)', Math.round(rate), 'commits/s');
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function measurePostgresCeiling(): Promise<Figure[]> {
  const server = await startPostgres({ durable: true });
  const database = await server.createDatabase('bench');
  const pool = new pg.Pool({ host: server.socketDir, user: server.user, database, max: 8 });
  pool.on('error', () => undefined); // connections cut when the server stops
  try {
    await pool.query('CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)');
    const value = 'x'.repeat(200);
    const commit = async () => {
      await pool.query('INSERT INTO t (v) VALUES ($1)', [value]);
      return 1;
    };
    const one: number[] = [];
    const eight: number[] = [];
    for (let i = 0; i < 3; i++) {
      one.push(await measureConcurrentRate(1500, commit, 1));
      eight.push(await measureConcurrentRate(1500, commit, 8));
    }
    return [
      figure(GROUP, 'PostgreSQL single-row commits (UNIX socket, 1 connection)', Math.round(median(one)), 'commits/s'),
      figure(GROUP, 'PostgreSQL single-row commits (UNIX socket, 8 connections)', Math.round(median(eight)), 'commits/s'),
    ];
  } finally {
    await pool.end();
    await server.stop();
  }
}

export function measureSigningCeiling(): Figure {
  const { privateKey } = generateKeyPairSync('ed25519');
  const message = Buffer.alloc(512, 7);
  const rate = measureRate(() => {
    for (let i = 0; i < 100; i++) sign(null, message, privateKey);
    return 100;
  });
  return figure(GROUP, 'ed25519 signatures (node:crypto, one core)', Math.round(rate), 'signatures/s');
}

export async function measureCeilings(): Promise<Figure[]> {
  return [measureSigningCeiling(), measureSqliteCeiling(), ...(await measurePostgresCeiling()), await measureHttpCeiling()];
}
