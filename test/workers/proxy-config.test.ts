// The generated reverse-proxy configs, run for real: nginx and haproxy from Debian, in front of
// stand-in instances on UNIX sockets that answer with their names, so each test sees which
// instance a request reached. test/workers/processes.test.ts runs the client suite through both
// proxies in front of real workers.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildProxyPlan, haproxyConfig, nginxConfig, templateRegex, type ProxyOptions } from '../../src/workers/proxy-config.js';
import type { Cluster } from '../../src/workers/topology.js';
import { startHaproxy } from '../harness/haproxy.js';
import { startNginx, type NginxServer } from '../harness/nginx.js';
import { freePort } from '../helpers/server-process.js';
import { loadDeployment, typicalDeployment, writeDeployment } from './fixture.js';
import { startStandIn, type Echo, type StandIn } from './stand-ins.js';

function tokenFor(localpart: string, device = 'A'): string {
  return `syt_${Buffer.from(localpart).toString('base64url')}_${device}${Math.random().toString(36).slice(2)}`;
}

interface Deployment {
  cluster: Cluster;
  standIns: StandIn[];
}

async function standInDeployment(): Promise<Deployment> {
  const files = typicalDeployment(() => ({ initial_sync_instances: ['generic2'] }));
  const standIns: StandIn[] = [];
  for (const instance of ['main', 'generic1', 'generic2', 'ephemeral'])
    standIns.push(await startStandIn(instance, join(files.run, `${instance}.sock`)));
  return { cluster: loadDeployment(files), standIns };
}

/** Where a request went, through the proxy at `baseUrl`. */
async function instanceFor(baseUrl: string, method: string, path: string, token?: string, body?: string): Promise<string> {
  const res = await fetch(baseUrl + path, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  assert.equal(res.status, 200, `${method} ${path}: ${res.status} ${text}`);
  return (JSON.parse(text) as Echo).instance;
}

/** What every generated proxy must do with the typical deployment. */
function routingBehaviour(name: string, proxyUrl: () => string) {
  test(`${name}: a user's syncs stick to one sync worker (token in the header or the query); users spread`, async () => {
    const used = new Set<string>();
    for (let u = 0; u < 24; u++) {
      const byHeader = new Set<string>();
      for (const device of ['A', 'B'])
        byHeader.add(await instanceFor(proxyUrl(), 'GET', '/_matrix/client/v3/sync?since=s1_2', tokenFor(`user${u}`, device)));
      assert.equal(byHeader.size, 1, `user${u}: ${[...byHeader].join(', ')}`);
      const [instance] = byHeader;
      const byQuery = await instanceFor(proxyUrl(), 'GET', `/_matrix/client/r0/sync?since=s1_2&access_token=${tokenFor(`user${u}`, 'C')}`);
      assert.equal(byQuery, instance, `user${u} by query`);
      used.add(instance!);
    }
    assert.ok(used.size >= 2, `every user went to ${[...used].join(', ')}`);
    for (const instance of used) assert.ok(['generic1', 'generic2'].includes(instance), instance);
  });

  test(`${name}: initial syncs go to their own pool`, async () => {
    for (let u = 0; u < 8; u++)
      assert.equal(await instanceFor(proxyUrl(), 'GET', '/_matrix/client/v3/sync?timeout=0', tokenFor(`new${u}`)), 'generic2');
  });

  test(`${name}: /messages and sends stick to one worker per room`, async () => {
    for (let r = 0; r < 12; r++) {
      const room = encodeURIComponent(`!room${r}:matrix.example.com`);
      const seen = new Set<string>();
      for (let i = 0; i < 2; i++) {
        seen.add(await instanceFor(proxyUrl(), 'GET', `/_matrix/client/v3/rooms/${room}/messages?dir=b`, tokenFor(`u${i}`)));
        seen.add(
          await instanceFor(proxyUrl(), 'PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/txn${i}`, tokenFor(`u${i}`), '{}'),
        );
      }
      assert.equal(seen.size, 1, `room ${r}: ${[...seen].join(', ')}`);
    }
  });

  test(`${name}: stream writers get their endpoints, main what only it serves, the rest any worker`, async () => {
    const token = tokenFor('writer');
    assert.equal(await instanceFor(proxyUrl(), 'PUT', '/_matrix/client/v3/rooms/!r:x/typing/@writer:x', token, '{}'), 'ephemeral');
    assert.equal(await instanceFor(proxyUrl(), 'PUT', '/_matrix/client/v3/sendToDevice/m.x/t1', token, '{}'), 'ephemeral');
    // A room v3 event id holds `/`, sent as %2F.
    assert.equal(
      await instanceFor(proxyUrl(), 'POST', `/_matrix/client/v3/rooms/!r:x/receipt/m.read/${encodeURIComponent('$ab/cd+ef')}`, token, '{}'),
      'ephemeral',
    );
    assert.equal(await instanceFor(proxyUrl(), 'PUT', '/_matrix/client/v3/user/@writer:x/account_data/m.x', token, '{}'), 'ephemeral');
    assert.notEqual(
      await instanceFor(proxyUrl(), 'GET', '/_matrix/client/v3/user/@writer:x/account_data/m.x', token),
      'main',
      'reads go to any worker',
    );
    assert.equal(await instanceFor(proxyUrl(), 'PUT', '/_matrix/client/v3/presence/@writer:x/status', token, '{}'), 'main');
    assert.equal(await instanceFor(proxyUrl(), 'POST', '/_matrix/client/v3/logout', token, '{}'), 'main');
    assert.equal(await instanceFor(proxyUrl(), 'GET', '/_synapse/admin/v1/register'), 'main');
    assert.notEqual(await instanceFor(proxyUrl(), 'GET', '/_matrix/client/versions'), 'main');
    assert.equal(
      await instanceFor(proxyUrl(), 'GET', '/_matrix/client/v3/unknown/endpoint'),
      'main',
      'what no route claims goes to main, which answers 404',
    );
  });
}

describe('myelin proxy-config nginx, run by nginx', () => {
  let deployment: Deployment;
  let nginx: NginxServer;
  let url = '';
  before(async () => {
    deployment = await standInDeployment();
    const port = await freePort();
    const options: ProxyOptions = { listen: `127.0.0.1:${port}`, serverName: 'matrix.example.com', maxBodyBytes: 1024 * 1024 };
    nginx = await startNginx(nginxConfig(deployment.cluster, options), port);
    url = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await nginx?.stop();
    await Promise.all(deployment?.standIns.map((s) => s.close()) ?? []);
  });

  routingBehaviour('nginx', () => url);

  test('nginx: bodies over max_upload_size are refused; the replication resource is never proxied (nor by haproxy)', async () => {
    const tooBig = await fetch(`${url}/_matrix/client/v3/rooms/!r:x/send/m.x/t`, { method: 'PUT', body: Buffer.alloc(2 * 1024 * 1024) });
    assert.equal(tooBig.status, 413);
    await tooBig.text();
    const options = { listen: '8008', serverName: 'x', maxBodyBytes: 1 };
    assert.doesNotMatch(nginxConfig(deployment.cluster, options), /replication/);
    assert.doesNotMatch(haproxyConfig(deployment.cluster, options), /replication/);
  });
});

describe('myelin proxy-config haproxy, run by haproxy', () => {
  let deployment: Deployment;
  let haproxy: Awaited<ReturnType<typeof startHaproxy>>;
  let url = '';
  before(async () => {
    assert.ok(existsSync('/usr/sbin/haproxy'), 'haproxy is installed (apt-get install haproxy; .ci/run installs it)');
    deployment = await standInDeployment();
    const port = await freePort();
    haproxy = await startHaproxy(
      haproxyConfig(deployment.cluster, { listen: `127.0.0.1:${port}`, serverName: 'matrix.example.com', maxBodyBytes: 1024 * 1024 }),
      port,
    );
    url = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await haproxy?.stop();
    await Promise.all(deployment?.standIns.map((s) => s.close()) ?? []);
  });

  routingBehaviour('haproxy', () => url);
});

describe('the proxy plan', () => {
  test('path templates become anchored regexes; a last parameter may hold slashes', () => {
    assert.equal(
      templateRegex('/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}'),
      '^/_matrix/client/v3/rooms/[^/]+/send/[^/]+/.+$',
    );
    assert.equal(templateRegex('/_matrix/client/v3/rooms/{roomId}/state/{eventType}/'), '^/_matrix/client/v3/rooms/[^/]+/state/[^/]+/$');
    assert.equal(templateRegex('/.well-known/matrix/client'), '^/\\.well-known/matrix/client$');
  });

  test('without workers everything goes to main: no locations, one upstream', () => {
    const plan = buildProxyPlan(loadDeployment(writeDeployment()));
    assert.equal(plan.locations.length, 0);
    assert.deepEqual(
      plan.pools.map((p) => p.name),
      ['myelin_main'],
    );
  });

  test('a more specific location comes before one that would also match', () => {
    const plan = buildProxyPlan(loadDeployment(typicalDeployment()));
    const index = (regex: string) => plan.locations.findIndex((l) => l.regex === regex);
    const enabled = index('^/_matrix/client/(?:r0|v3)/pushrules/global/[^/]+/[^/]+/enabled$');
    const rule = index('^/_matrix/client/(?:r0|v3)/pushrules/global/[^/]+/.+$');
    assert.ok(enabled >= 0 && rule >= 0 && enabled < rule, `${enabled} < ${rule}`);
  });
});
