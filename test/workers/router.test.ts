// The built-in router's choices, observed on echo servers that answer with their instance's name
// (a real worker does not say which process answered): stickiness, pools, failover, streaming.
// test/workers/processes.test.ts runs the js-sdk client suite through the router in front of real
// workers.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listenerSchema } from '../../src/config/schema.js';
import type { RunningListener } from '../../src/http/listener.js';
import { createLogger } from '../../src/util/log.js';
import { candidateOrder, createRouter, startRouterListeners, userKeyOfToken, type Router } from '../../src/workers/router.js';
import { loadDeployment, typicalDeployment } from './fixture.js';
import { startStandIn, type Echo, type StandIn } from './stand-ins.js';

const log = createLogger({ instance: 'test', level: 'fatal' });

/** A token as Myelin issues them: syt_<base64url localpart>_<random>. */
function tokenFor(localpart: string, device = 'A'): string {
  return `syt_${Buffer.from(localpart).toString('base64url')}_${device}random${Math.random().toString(36).slice(2)}`;
}

describe('built-in router', () => {
  let router: Router;
  let listeners: RunningListener[];
  let baseUrl: string;
  const standIns = new Map<string, StandIn>();
  let run: string;

  before(async () => {
    const files = typicalDeployment(() => ({ initial_sync_instances: ['generic2'] }));
    run = files.run;
    for (const [instance, socket] of [
      ['main', 'main.sock'],
      ['generic1', 'generic1.sock'],
      ['generic2', 'generic2.sock'],
      ['ephemeral', 'ephemeral.sock'],
    ] as const) {
      standIns.set(instance, await startStandIn(instance, join(run, socket)));
    }
    router = createRouter({ cluster: loadDeployment(files), log });
    const listener = listenerSchema.parse({ type: 'http', port: 0, bind_addresses: ['127.0.0.1'], resources: [{ names: ['router'] }] });
    listeners = await startRouterListeners([listener], router, log);
    baseUrl = listeners[0]!.addresses[0]!;
  });

  after(async () => {
    await Promise.all(listeners.map((l) => l.close(0)));
    router.close();
    await Promise.all([...standIns.values()].map((s) => s.close()));
  });

  async function call(
    method: string,
    path: string,
    options: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const res = await fetch(baseUrl + path, { method, headers, body: options.body });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json: json as (Echo & { errcode?: string }) | undefined, text };
  }

  test('a user’s syncs stick to one worker, whichever device; users spread over the sync workers', async () => {
    const seenFor = new Map<string, Set<string>>();
    for (let u = 0; u < 30; u++) {
      const user = `user${u}`;
      for (const device of ['A', 'B', 'C']) {
        const { status, json } = await call('GET', '/_matrix/client/v3/sync?since=s1_0&timeout=0', { token: tokenFor(user, device) });
        assert.equal(status, 200);
        seenFor.set(user, (seenFor.get(user) ?? new Set()).add(json!.instance));
      }
    }
    for (const [user, instances] of seenFor) assert.equal(instances.size, 1, `${user} went to ${[...instances].join(', ')}`);
    const used = new Set([...seenFor.values()].flatMap((s) => [...s]));
    assert.ok(used.size >= 2, `30 users all went to ${[...used].join(', ')}`);
    for (const instance of used) assert.ok(['generic1', 'generic2'].includes(instance), instance);
  });

  test('the token in the access_token parameter counts too', async () => {
    const token = tokenFor('carol');
    const byHeader = await call('GET', '/_matrix/client/v3/sync?since=s1_0', { token });
    const byQuery = await call('GET', `/_matrix/client/v3/sync?since=s1_0&access_token=${token}`);
    assert.equal(byQuery.json!.instance, byHeader.json!.instance);
  });

  test('initial syncs (no since) go to initial_sync_instances', async () => {
    for (let u = 0; u < 10; u++) {
      const { json } = await call('GET', '/_matrix/client/v3/sync', { token: tokenFor(`fresh${u}`) });
      assert.equal(json!.instance, 'generic2');
    }
  });

  test('room-sticky routes keep a room on one worker', async () => {
    const rooms = Array.from({ length: 20 }, (_, i) => `!room${i}:matrix.example.com`);
    const byRoom = new Map<string, Set<string>>();
    for (const room of rooms) {
      for (let i = 0; i < 3; i++) {
        const encoded = encodeURIComponent(room);
        const messages = await call('GET', `/_matrix/client/v3/rooms/${encoded}/messages?dir=b`, { token: tokenFor(`u${i}`) });
        const send = await call('PUT', `/_matrix/client/r0/rooms/${encoded}/send/m.room.message/t${i}`, {
          token: tokenFor(`u${i}`),
          body: '{"body":"hi"}',
        });
        byRoom.set(room, (byRoom.get(room) ?? new Set()).add(messages.json!.instance).add(send.json!.instance));
      }
    }
    for (const [room, instances] of byRoom) assert.equal(instances.size, 1, `${room}: ${[...instances].join(', ')}`);
  });

  test('stream writers get their routes; main its own', async () => {
    const token = tokenFor('dave');
    const typing = await call('PUT', '/_matrix/client/v3/rooms/!r:x/typing/@dave:x', { token, body: '{"typing":true}' });
    assert.equal(typing.json!.instance, 'ephemeral');
    const accountData = await call('PUT', '/_matrix/client/v3/user/@dave:x/account_data/m.x', { token, body: '{}' });
    assert.equal(accountData.json!.instance, 'ephemeral');
    const presence = await call('PUT', '/_matrix/client/v3/presence/@dave:x/status', { token, body: '{"presence":"online"}' });
    assert.equal(presence.json!.instance, 'main', 'presence is written by main here');
    const nonce = await call('GET', '/_synapse/admin/v1/register');
    assert.equal(nonce.json!.instance, 'main');
    const whoami = await call('GET', '/_matrix/client/v3/account/whoami', { token });
    assert.ok(['generic1', 'generic2'].includes(whoami.json!.instance));
  });

  test('bodies stream both ways, unchanged; the client address is forwarded', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 'x');
    const sent = await call('PUT', '/_matrix/client/v3/rooms/!r:x/send/m.big/t1', { token: tokenFor('erin'), body });
    assert.equal(sent.json!.bodyBytes, body.length);
    assert.equal(sent.json!.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(sent.json!.headers.authorization?.toString().startsWith('Bearer syt_'), true);
    const big = await call('GET', '/_matrix/client/v3/rooms/!r:x/messages?big=1', { token: tokenFor('erin') });
    assert.equal(big.status, 200);
    assert.equal(big.text.length, 4 * 1024 * 1024);
  });

  test('a body over the route’s limit is refused by the router itself (413 M_TOO_LARGE); no instance sees it', async () => {
    const seenBefore = [...standIns.values()].reduce((n, s) => n + s.seen.length, 0);
    const body = Buffer.alloc(13 * 1024 * 1024, 'x');
    const refused = await call('PUT', '/_matrix/client/v3/rooms/!r:x/send/m.big/t2', { token: tokenFor('erin'), body });
    assert.equal(refused.status, 413, refused.text);
    assert.equal(refused.json!.errcode, 'M_TOO_LARGE');
    assert.equal(refused.headers.get('access-control-allow-origin'), '*');
    assert.equal(
      [...standIns.values()].reduce((n, s) => n + s.seen.length, 0),
      seenBefore,
    );
  });

  test('unknown paths and methods are answered by the router with Matrix errors; /health and CORS preflights too', async () => {
    const unknown = await call('GET', '/_matrix/client/v3/nope');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json!.errcode, 'M_UNRECOGNIZED');
    assert.equal(unknown.headers.get('access-control-allow-origin'), '*');
    const wrongMethod = await call('DELETE', '/_matrix/client/v3/sync');
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.json!.errcode, 'M_UNRECOGNIZED');
    const media = await call('GET', '/_matrix/media/v3/config');
    assert.equal(media.status, 404, 'no instance serves the media resource');
    const health = await call('GET', '/health');
    assert.equal(health.status, 200);
    assert.equal(health.text, 'OK');
    const preflight = await call('OPTIONS', '/_matrix/client/v3/sync');
    assert.equal(preflight.status, 200);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /PUT/);
  });

  test('a worker that is down: its users move to the next worker, and come back when it returns', async () => {
    const token = tokenFor('frank');
    const before = (await call('GET', '/_matrix/client/v3/sync?since=s1', { token })).json!.instance;
    const down = standIns.get(before)!;
    await down.close();
    try {
      for (let i = 0; i < 5; i++) {
        const { status, json } = await call('GET', '/_matrix/client/v3/sync?since=s1', { token });
        assert.equal(status, 200);
        assert.notEqual(json!.instance, before);
      }
      const moved = (await call('GET', '/_matrix/client/v3/sync?since=s1', { token })).json!.instance;
      for (let i = 0; i < 3; i++)
        assert.equal((await call('GET', '/_matrix/client/v3/sync?since=s1', { token })).json!.instance, moved, 'the runner-up is stable');
    } finally {
      standIns.set(before, await startStandIn(before, down.path));
    }
    assert.equal((await call('GET', '/_matrix/client/v3/sync?since=s1', { token })).json!.instance, before);
  });

  test('when no instance that may serve a request is up: 502 with a Matrix error', async () => {
    const ephemeral = standIns.get('ephemeral')!;
    await ephemeral.close();
    try {
      const { status, json } = await call('PUT', '/_matrix/client/v3/rooms/!r:x/typing/@g:x', {
        token: tokenFor('g'),
        body: '{"typing":true}',
      });
      assert.equal(status, 502);
      assert.equal(json!.errcode, 'M_UNKNOWN');
    } finally {
      standIns.set('ephemeral', await startStandIn('ephemeral', ephemeral.path));
    }
  });
});

describe('sticky choice', () => {
  test('adding a worker moves only the keys the new worker wins (about 1/n)', () => {
    const three = ['generic1', 'generic2', 'generic3'];
    const four = [...three, 'generic4'];
    let moved = 0;
    const keys = 2000;
    for (let i = 0; i < keys; i++) {
      const key = `user${i}`;
      const beforeChoice = candidateOrder(three, key, 0)[0];
      const afterChoice = candidateOrder(four, key, 0)[0];
      if (beforeChoice !== afterChoice) {
        moved++;
        assert.equal(afterChoice, 'generic4', 'a key only ever moves to the new worker');
      }
    }
    assert.ok(moved > keys * 0.18 && moved < keys * 0.32, `${moved} of ${keys} moved`);
  });

  test('without a key, requests rotate over the candidates', () => {
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => candidateOrder(['a', 'b', 'c'], undefined, r)[0]),
      ['a', 'b', 'c', 'a'],
    );
  });

  test('the user key is the localpart part of syt_ tokens, the token otherwise', () => {
    assert.equal(userKeyOfToken(`syt_${Buffer.from('alice').toString('base64url')}_abc_def`), Buffer.from('alice').toString('base64url'));
    assert.equal(userKeyOfToken('opaque-token'), 'opaque-token');
  });
});
