// matrix-js-sdk 37.5.0 with lazy-loaded members, reloaded on a sync it saved earlier (as a web
// client reloads its page: its store holds a sync from before it joined a room), against the real
// `myelin start` process on SQLite and on PostgreSQL, and a worker deployment through the built-in
// router. The reloaded client must list the room with the user joined, and know the member who
// spoke in the room's (limited) timeline, although the server sent both member events to this
// device before the reload.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ClientEvent,
  createClient,
  MemoryStore,
  SyncAccumulator,
  SyncState,
  type ISyncResponse,
  type MatrixClient,
  type SyncStateData,
} from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import type { ISavedSync } from 'matrix-js-sdk/lib/store/index.js';
import { testPostgres } from '../harness/postgres.js';
import { startProcessCluster, type ProcessCluster } from '../helpers/process-cluster.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { waitFor } from '../helpers/wait.js';

for (const l of [logger, logger.getChild('[MatrixRTCSessionManager]')])
  (l as unknown as { setLevel(level: string): void }).setLevel('silent');

// matrix-js-sdk arms a timer of 110 s for every /sync request and never clears it, which would keep
// this test process alive long after its clients stop. Timers that long are unref'd; nothing here
// waits on one.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = Object.assign((handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const timer = realSetTimeout(handler, ms, ...args);
  if ((ms ?? 0) >= 60_000) timer.unref();
  return timer;
}, realSetTimeout);

/**
 * A store that keeps the client's sync as the SDK's IndexedDB store does (a SyncAccumulator fed
 * every /sync response) and starts from a sync saved earlier, as that store does after a reload.
 */
class ReloadableStore extends MemoryStore {
  private readonly accumulator = new SyncAccumulator();

  constructor(private readonly saved: ISavedSync | null = null) {
    super();
  }

  override async setSyncData(syncData: ISyncResponse): Promise<void> {
    this.accumulator.accumulate(syncData);
  }

  /** What the IndexedDB store would write to disk now. */
  snapshot(): ISavedSync {
    return structuredClone(this.accumulator.getJSON());
  }

  override getSavedSync(): Promise<ISavedSync | null> {
    return Promise.resolve(this.saved ? structuredClone(this.saved) : null);
  }

  override getSavedSyncToken(): Promise<string | null> {
    return Promise.resolve(this.saved?.nextBatch ?? null);
  }
}

interface Account {
  userId: string;
  accessToken: string;
  deviceId: string;
}

async function call(baseUrl: string, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await res.json();
  assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

async function register(baseUrl: string, username: string): Promise<Account> {
  const json = await call(baseUrl, 'POST', '/_matrix/client/v3/register', undefined, {
    username,
    password: `pw-${username}-secret`,
    auth: { type: 'm.login.dummy' },
  });
  return { userId: json.user_id, accessToken: json.access_token, deviceId: json.device_id };
}

/** A client with lazy-loaded members (as Element and Cinny run), started on `store`. */
async function startClient(baseUrl: string, account: Account, store: ReloadableStore): Promise<MatrixClient> {
  const client = createClient({ baseUrl, ...account, store });
  await client.startClient({ lazyLoadMembers: true, initialSyncLimit: 8 });
  return client;
}

/** Resolves when the client has processed the answer to a /sync from `since` (not its cache). */
function syncedFrom(client: MatrixClient, since: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(ClientEvent.Sync, onSync);
      reject(new Error(`timed out waiting for the client's /sync from ${since}`));
    }, 60_000);
    const onSync = (state: SyncState, _previous: SyncState | null, data?: SyncStateData) => {
      if ((state === SyncState.Prepared || state === SyncState.Syncing) && !data?.fromCache && data?.oldSyncToken === since) {
        clearTimeout(timer);
        client.off(ClientEvent.Sync, onSync);
        resolve();
      }
    };
    client.on(ClientEvent.Sync, onSync);
  });
}

interface Deployment {
  name: string;
  start(): Promise<{ baseUrl: string; stop(): Promise<unknown> }>;
}

const DEPLOYMENTS: Deployment[] = [
  {
    name: 'one process on SQLite',
    async start() {
      const server: ServerProcess = await startServerProcess();
      return { baseUrl: server.baseUrl, stop: () => server.stop() };
    },
  },
  {
    name: 'one process on PostgreSQL',
    async start() {
      const pg = await testPostgres();
      const database = await pg.createDatabase('reload');
      const server = await startServerProcess({
        config: { database: { name: 'psycopg2', args: { host: pg.socketDir, user: pg.user, database } } },
      });
      return { baseUrl: server.baseUrl, stop: () => server.stop() };
    },
  },
  {
    name: 'a worker deployment through the router',
    async start() {
      const cluster: ProcessCluster = await startProcessCluster({ persisters: 1, generic: 2 });
      return { baseUrl: cluster.routerUrl!, stop: () => cluster.stop() };
    },
  },
];

for (const deployment of DEPLOYMENTS) {
  describe(`matrix-js-sdk reloaded on a saved sync, on ${deployment.name}`, () => {
    let server: { baseUrl: string; stop(): Promise<unknown> };
    const clients: MatrixClient[] = [];
    before(async () => {
      server = await deployment.start();
    });
    after(async () => {
      for (const client of clients) client.stopClient();
      await server?.stop();
    });

    test('a client with lazy-loaded members lists a room joined after its saved sync, with its own join and the senders', async () => {
      const { baseUrl } = server;
      const alice = await register(baseUrl, 'alice');
      const bob = await register(baseUrl, 'bob');

      const firstStore = new ReloadableStore();
      const first = await startClient(baseUrl, alice, firstStore);
      clients.push(first);
      await waitFor(first, () => first.isInitialSyncComplete(), "alice's initial sync", 60_000);
      // The sync the page saved: from before the room existed.
      const saved = firstStore.snapshot();
      assert.deepEqual(Object.keys(saved.roomsData.join), []);

      const { room_id: roomId } = await first.createRoom({ name: 'Reloaded', preset: 'public_chat' as never });
      await call(baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, bob.accessToken, {});
      for (let i = 0; i < 12; i++) {
        await call(baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/m${i}`, bob.accessToken, {
          msgtype: 'm.text',
          body: `bob ${i}`,
        });
      }
      // The first client saw all of it: the server sent both member events to this device.
      await waitFor(first, () => first.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'the first client to see bob join');
      await waitFor(
        first,
        () =>
          first
            .getRoom(roomId)
            ?.getLiveTimeline()
            .getEvents()
            .some((e) => e.getContent().body === 'bob 11'),
        "the first client to see bob's last message",
      );
      assert.equal(first.getRoom(roomId)?.getMyMembership(), 'join');
      first.stopClient();

      // The reload: the same device, the saved sync.
      const reloaded = await startClient(baseUrl, alice, new ReloadableStore(saved));
      clients.push(reloaded);
      await syncedFrom(reloaded, saved.nextBatch);
      const room = reloaded.getRoom(roomId);
      assert.ok(room, 'the reloaded client has the room');
      assert.equal(room.getMyMembership(), 'join', 'and knows alice is joined');
      assert.deepEqual(
        reloaded
          .getRooms()
          .filter((r) => r.getMyMembership() === 'join')
          .map((r) => r.roomId),
        [roomId],
        'the room is listed',
      );
      assert.equal(room.getMember(bob.userId)?.membership, 'join', 'the sender of the timeline is known');
      assert.ok(
        room
          .getLiveTimeline()
          .getEvents()
          .some((e) => e.getContent().body === 'bob 11'),
      );
    });
  });
}
