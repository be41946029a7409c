// Benchmark group `e2ee`: one-time key claims and device key queries against the real server
// process on SQLite (started as the `client` group does), measured over keep-alive HTTP.
//
// Setup, all through HTTP except account creation: 1,000 users, each with one device whose keys
// are signed by the device and by the user's self-signing key (cross-signing, as current clients
// set up). The first 100 devices also upload a stock of signed one-time keys. The 1,000 users are
// members of four encrypted rooms of 250 each, and user 0 is in all four: user 0 shares rooms with
// all of them and, after an initial sync, asks for all their keys in one `/keys/query`.

import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import { crossSigningSet, deviceKeysOf, ed25519, oneTimeKeys, signed } from '../test/helpers/e2ee-keys.js';
import { call, prepareServer, startServer, type Account } from './client.js';
import { figure, median, percentile, type Figure } from './harness.js';

const GROUP = 'e2ee';
const USERS = 1000;
const CLAIM_DEVICES = 100;
/** One-time keys per claimable device: enough for every claim below, so none falls back to nothing. */
const ONE_TIME_KEYS = 400;
const QUERY_ROUNDS = 50;

const enc = encodeURIComponent;
const round1 = (ms: number) => Math.round(ms * 10) / 10;

/**
 * CPU time (user + system, all threads) a process has used, in ms, from /proc. The machine's other
 * load moves latencies a lot; the server's CPU per request moves much less.
 */
function cpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** Device keys, cross-signing keys and the device's self-signing signature; one-time keys if asked. */
async function uploadKeys(pool: Pool, account: Account, oneTimeKeyCount: number): Promise<void> {
  const { userId, deviceId, token } = account;
  const key = ed25519();
  const deviceKeys = deviceKeysOf({ userId, deviceId }, key);
  const device = { userId, deviceId, key };
  // At most 200 keys per upload, as clients upload them in batches.
  for (let uploaded = 0; uploaded === 0 || uploaded < oneTimeKeyCount; uploaded += 200) {
    const body: Record<string, unknown> = uploaded === 0 ? { device_keys: deviceKeys } : {};
    const count = Math.min(200, oneTimeKeyCount - uploaded);
    if (count > 0) body.one_time_keys = oneTimeKeys(device, count, `k${uploaded}_`);
    const answer = await call(pool, 'POST', '/_matrix/client/v3/keys/upload', token, body);
    if (count > 0 && answer.one_time_key_counts?.signed_curve25519 !== uploaded + count) {
      throw new Error(`one-time key count after upload: ${JSON.stringify(answer)}`);
    }
  }
  const set = crossSigningSet(userId);
  await call(pool, 'POST', '/_matrix/client/v3/keys/device_signing/upload', token, set.body);
  const selfSigned = signed(deviceKeys, userId, `ed25519:${set.selfSigning.publicKey}`, set.selfSigning);
  const { failures } = await call(pool, 'POST', '/_matrix/client/v3/keys/signatures/upload', token, {
    [userId]: { [deviceId]: selfSigned },
  });
  if (Object.keys(failures ?? {}).length) throw new Error(`signature upload failed: ${JSON.stringify(failures)}`);
}

/** An encrypted private room of `owner` that `members` join. */
async function encryptedRoom(pool: Pool, owner: Account, members: readonly Account[]): Promise<string> {
  const { room_id: roomId } = await call(pool, 'POST', '/_matrix/client/v3/createRoom', owner.token, {
    preset: 'public_chat',
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await forEachConcurrently(members, 25, async (m) => {
    await call(pool, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, m.token);
  });
  return roomId;
}

function claimBody(devices: readonly Account[]): { one_time_keys: Record<string, Record<string, string>>; timeout: number } {
  const wanted: Record<string, Record<string, string>> = {};
  for (const d of devices) (wanted[d.userId] ??= {})[d.deviceId] = 'signed_curve25519';
  return { one_time_keys: wanted, timeout: 10_000 };
}

/** Claims one key of each device, and checks that each device gave one. */
async function claim(pool: Pool, claimer: Account, devices: readonly Account[]): Promise<void> {
  const answer = await call(pool, 'POST', '/_matrix/client/v3/keys/claim', claimer.token, claimBody(devices));
  for (const d of devices) {
    const keys = answer.one_time_keys?.[d.userId]?.[d.deviceId];
    if (!keys || Object.keys(keys).length !== 1)
      throw new Error(`no one-time key of ${d.userId} ${d.deviceId}: ${JSON.stringify(answer).slice(0, 300)}`);
  }
}

interface ClaimFigures {
  bulkLatencies: number[];
  bulkRate: number;
  singleRate: number;
  /** Server CPU per claimed key, µs, in the rounds of 100-device and of single-device claims. */
  bulkCpuPerClaim: number;
  singleCpuPerClaim: number;
}

/**
 * Three measurements, each on fresh keys (a claim removes its key):
 * - one client claiming a key of each of the 100 devices per request, one request at a time
 *   (what a client does before sending its first message in a room): latency per request;
 * - four such clients at once: claims per second;
 * - 32 clients each claiming one device's key per request: claims per second.
 * Keys used: 5 + 30 + 3 × 4 × 15 + 3 × 4,000 / 100 = 335 per device.
 */
async function measureClaims(
  pool: Pool,
  serverPid: number,
  claimers: readonly Account[],
  devices: readonly Account[],
): Promise<ClaimFigures> {
  for (let i = 0; i < 5; i++) await claim(pool, claimers[0]!, devices);
  const bulkLatencies: number[] = [];
  for (let i = 0; i < 30; i++) {
    const start = performance.now();
    await claim(pool, claimers[0]!, devices);
    bulkLatencies.push(performance.now() - start);
  }
  const bulkRates: number[] = [];
  let cpuBefore = cpuMs(serverPid);
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    await Promise.all(
      claimers.slice(0, 4).map(async (c) => {
        for (let i = 0; i < 15; i++) await claim(pool, c, devices);
      }),
    );
    bulkRates.push((4 * 15 * devices.length) / ((performance.now() - start) / 1000));
  }
  const bulkCpuPerClaim = ((cpuMs(serverPid) - cpuBefore) * 1000) / (3 * 4 * 15 * devices.length);
  const singleRates: number[] = [];
  cpuBefore = cpuMs(serverPid);
  for (let round = 0; round < 3; round++) {
    const claims = Array.from({ length: 4000 }, (_, i) => devices[i % devices.length]!);
    const start = performance.now();
    await forEachConcurrently(claims, 32, async (device, i) => claim(pool, claimers[i % claimers.length]!, [device]));
    singleRates.push(claims.length / ((performance.now() - start) / 1000));
  }
  const singleCpuPerClaim = ((cpuMs(serverPid) - cpuBefore) * 1000) / (3 * 4000);
  return { bulkLatencies, bulkRate: median(bulkRates), singleRate: median(singleRates), bulkCpuPerClaim, singleCpuPerClaim };
}

/** `/keys/query` for every user at once, as a client does after its initial sync; latencies in ms. */
async function measureQuery(
  pool: Pool,
  serverPid: number,
  querier: Account,
  users: readonly Account[],
): Promise<{ latencies: number[]; first: number; cpuPerQuery: number }> {
  const body = JSON.stringify({ device_keys: Object.fromEntries(users.map((u) => [u.userId, []])), timeout: 10_000 });
  const query = async (): Promise<number> => {
    const start = performance.now();
    const res = await pool.request({
      method: 'POST',
      path: '/_matrix/client/v3/keys/query',
      headers: { authorization: `Bearer ${querier.token}`, 'content-type': 'application/json' },
      body,
    });
    const text = await res.body.text();
    const took = performance.now() - start;
    if (res.statusCode !== 200) throw new Error(`/keys/query → ${res.statusCode} ${text.slice(0, 200)}`);
    // Checked outside the timing: the client's own parsing is not the server's latency.
    const answer = JSON.parse(text) as {
      device_keys: Record<string, Record<string, unknown>>;
      master_keys: Record<string, unknown>;
      self_signing_keys: Record<string, unknown>;
    };
    for (const u of users) {
      const device = answer.device_keys[u.userId]?.[u.deviceId] as { signatures?: Record<string, Record<string, string>> } | undefined;
      if (
        !device ||
        Object.keys(device.signatures?.[u.userId] ?? {}).length !== 2 ||
        !answer.master_keys[u.userId] ||
        !answer.self_signing_keys[u.userId]
      ) {
        throw new Error(`/keys/query: keys of ${u.userId} missing or unsigned`);
      }
    }
    return took;
  };
  const first = await query();
  for (let i = 0; i < 3; i++) await query();
  const latencies: number[] = [];
  const cpuBefore = cpuMs(serverPid);
  for (let i = 0; i < QUERY_ROUNDS; i++) latencies.push(await query());
  return { latencies, first, cpuPerQuery: (cpuMs(serverPid) - cpuBefore) / QUERY_ROUNDS };
}

/** MYELIN_BENCH_E2EE_PARTS (e.g. "query") runs only some parts, when studying one figure. */
function enabled(part: 'query' | 'claim'): boolean {
  const parts = process.env.MYELIN_BENCH_E2EE_PARTS;
  return !parts || parts.split(',').includes(part);
}

export async function measureE2ee(): Promise<Figure[]> {
  const prepared = await prepareServer(USERS);
  const server = await startServer(prepared.configPath, prepared.baseUrl);
  const pool = new Pool(prepared.baseUrl, { connections: 32 });
  const accounts = prepared.accounts;
  try {
    await forEachConcurrently(accounts, 16, (account, i) => uploadKeys(pool, account, i < CLAIM_DEVICES ? ONE_TIME_KEYS : 0));
    const querier = accounts[0]!;
    for (let r = 0; r < 4; r++) {
      const members = accounts.slice(r * 250, (r + 1) * 250).filter((a) => a !== querier);
      await encryptedRoom(pool, querier, members);
    }
    await call(pool, 'GET', '/_matrix/client/v3/sync?timeout=0', querier.token);

    const figures: Figure[] = [];
    if (enabled('query')) {
      const { latencies, first, cpuPerQuery } = await measureQuery(pool, server.child.pid!, querier, accounts);
      figures.push(
        figure(GROUP, '/keys/query of 1,000 users sharing rooms, median', round1(median(latencies)), 'ms', { op: '<=', value: 50 }),
      );
      figures.push(figure(GROUP, '/keys/query of 1,000 users sharing rooms, p99', round1(percentile(latencies, 99)), 'ms'));
      figures.push(figure(GROUP, '/keys/query of 1,000 users, first after setup', round1(first), 'ms'));
      figures.push(figure(GROUP, '/keys/query of 1,000 users, server CPU per query', round1(cpuPerQuery), 'ms'));
    }
    if (!enabled('claim')) return figures;
    const claimers = accounts.slice(USERS - 32);
    const claims = await measureClaims(pool, server.child.pid!, claimers, accounts.slice(0, CLAIM_DEVICES));
    figures.push(figure(GROUP, '/keys/claim of 100 devices in one request, median', round1(median(claims.bulkLatencies)), 'ms'));
    figures.push(figure(GROUP, '/keys/claim of 100 devices per request, 4 clients', Math.round(claims.bulkRate), 'claims/s'));
    figures.push(figure(GROUP, '/keys/claim of 1 device per request, 32 clients', Math.round(claims.singleRate), 'claims/s'));
    figures.push(figure(GROUP, '/keys/claim server CPU per key, 100 devices per request', Math.round(claims.bulkCpuPerClaim), 'µs'));
    figures.push(figure(GROUP, '/keys/claim server CPU per key, 1 device per request', Math.round(claims.singleCpuPerClaim), 'µs'));
    return figures;
  } finally {
    await pool.close();
    await server.stop();
  }
}
