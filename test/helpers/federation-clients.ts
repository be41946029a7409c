// For tests of two federating Myelins: matrix-js-sdk clients of real federating Myelins (HTTPS with the
// test's self-signed certificate), raw client-server calls, and a raw /sync reader.

import assert from 'node:assert/strict';
import { createClient, PendingEventOrdering, type MatrixClient } from 'matrix-js-sdk';
import { Agent, fetch as undiciFetch } from 'undici';
import { httpsCall, type FederatingServer, type HttpsAnswer } from './federation.js';
import { eventually, waitFor } from './wait.js';

/** The test servers' certificates are the test's own: the clients accept them. */
const insecureAgent = new Agent({ connect: { rejectUnauthorized: false } });
const insecureFetch = ((url: string, init?: RequestInit) =>
  undiciFetch(url, { ...(init as object), dispatcher: insecureAgent })) as unknown as typeof fetch;

export interface Account {
  userId: string;
  username: string;
  password: string;
  accessToken: string;
  deviceId: string;
  server: FederatingServer;
}

export const clients: MatrixClient[] = [];

export async function registerAccount(server: FederatingServer, username: string): Promise<Account> {
  const password = `pw-${username}-secret`;
  const anonymous = createClient({ baseUrl: server.baseUrl, fetchFn: insecureFetch });
  const registered = await anonymous.registerRequest({ username, password, auth: { type: 'm.login.dummy' } });
  return { userId: registered.user_id, username, password, accessToken: registered.access_token!, deviceId: registered.device_id!, server };
}

export async function loginAccount(account: Account): Promise<Account> {
  const anonymous = createClient({ baseUrl: account.server.baseUrl, fetchFn: insecureFetch });
  const response = await anonymous.loginRequest({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: account.username },
    password: account.password,
  });
  return { ...account, accessToken: response.access_token, deviceId: response.device_id };
}

/** A started matrix-js-sdk client of `account` (with rust crypto when `crypto`), after its initial sync. */
export async function startClient(account: Account, options: { crypto?: boolean } = {}): Promise<MatrixClient> {
  const client = createClient({
    baseUrl: account.server.baseUrl,
    fetchFn: insecureFetch,
    userId: account.userId,
    accessToken: account.accessToken,
    deviceId: account.deviceId,
  });
  if (options.crypto) await client.initRustCrypto({ useIndexedDB: false });
  // Detached local echoes (as Element uses): the live timeline shows the server's order.
  await client.startClient({ initialSyncLimit: 30, pendingEventOrdering: PendingEventOrdering.Detached });
  clients.push(client);
  await waitFor(client, () => client.isInitialSyncComplete(), `${account.userId}'s initial sync`, 60_000);
  return client;
}

export function stopClients(): void {
  for (const client of clients.splice(0)) client.stopClient();
}

export const enc = encodeURIComponent;

export function call(account: Account, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(account.server.baseUrl, method, path, {
    headers: { Authorization: `Bearer ${account.accessToken}` },
    ...(body === undefined ? {} : { body }),
  });
}

export async function ok(answer: Promise<HttpsAnswer>): Promise<any> {
  const res = await answer;
  assert.equal(res.status, 200, res.text);
  return res.json;
}

/** `target`'s membership in `roomId` as `viewer`'s server holds it (undefined when it has none). */
export async function membershipOn(viewer: Account, roomId: string, target: string): Promise<string | undefined> {
  const res = await call(viewer, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(target)}`);
  return res.status === 200 ? (res.json.membership as string) : undefined;
}

/** Waits until both viewers' servers hold `membership` for `target`. */
export async function membershipSeenBy(viewers: Account[], roomId: string, target: string, membership: string): Promise<void> {
  for (const viewer of viewers) {
    await eventually(
      async () => (await membershipOn(viewer, roomId, target)) === membership,
      `${viewer.userId}'s server to hold ${target} as ${membership}`,
    );
  }
}

export async function rawSync(account: Account, query: Record<string, string> = {}): Promise<any> {
  const params = new URLSearchParams({ timeout: '0', ...query });
  return ok(call(account, 'GET', `/_matrix/client/v3/sync?${params.toString()}`));
}

/**
 * Reads `account`'s /sync from `since` until `done(events)` holds for the room's timeline events
 * gathered so far, as a client does: a limited timeline's gap (the server caps a sync's timeline)
 * is filled with /messages back from its `prev_batch` to the previous sync's `next_batch`.
 */
export async function syncTimelineUntil(
  account: Account,
  roomId: string,
  since: string,
  done: (events: any[]) => boolean,
  what: string,
  ms = 90_000,
): Promise<{ events: any[]; next: string }> {
  const filter = JSON.stringify({ room: { timeline: { limit: 100 }, rooms: [roomId] } });
  const events: any[] = [];
  const deadline = Date.now() + ms;
  let next = since;
  while (!done(events)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${events.length} events so far)`);
    const body = await rawSync(account, { since: next, filter, timeout: '2000' });
    const timeline = body.rooms?.join?.[roomId]?.timeline;
    if (timeline) {
      if (timeline.limited) events.push(...(await gap(account, roomId, timeline.prev_batch, next)));
      events.push(...timeline.events);
    }
    next = body.next_batch;
  }
  return { events, next };
}

/** The room's events between two tokens (`from` the later), oldest first. */
async function gap(account: Account, roomId: string, from: string, to: string): Promise<any[]> {
  const chunks: any[] = [];
  for (let token = from; ;) {
    const params = new URLSearchParams({ dir: 'b', from: token, to, limit: '100' });
    const page = await ok(call(account, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?${params.toString()}`));
    chunks.push(...page.chunk);
    if (page.chunk.length === 0 || page.end === undefined) break;
    token = page.end;
  }
  return chunks.reverse();
}
