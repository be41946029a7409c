// What a route declaration makes the dispatcher do: the auth kinds (who may call, what the handler
// is given), the `server` kind's authenticator hook (handed the request exactly as signed), and
// body schemas (the handler gets the parsed body; a bad one is a Matrix error that names the
// field, with the errcode the kind of problem calls for).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { z } from 'zod';
import { optionalBody } from '../../src/api/schemas.js';
import { checked, Errors, jsonObject, optionalString, requiredString } from '../../src/errors.js';
import type { Requester } from '../../src/handlers/kernel/requester.js';
import { createDispatcher, type DispatcherOptions, type SignedRequest } from '../../src/http/dispatch.js';
import { startListener, type RunningListener } from '../../src/http/listener.js';
import { routeDefiner } from '../../src/http/route.js';
import { request, type TestResponse } from '../helpers/http.js';

const log = pino({ level: 'silent' });
const defineRoute = routeDefiner<null>();

const ACCOUNTS: Record<string, Requester> = {
  'user-token': { userId: '@alice:test', deviceId: 'ALICE', isGuest: false, tokenHash: 'a' },
  'guest-token': { userId: '@12:test', deviceId: 'GUEST', isGuest: true, tokenHash: 'g' },
};

const routes = [
  defineRoute({
    name: 'test.user',
    method: 'GET',
    paths: '/_matrix/client/v3/user-only',
    resource: 'client',
    auth: 'user',
    handle: ({ requester }) => ({ body: { user_id: requester.userId } }),
  }),
  defineRoute({
    name: 'test.guest',
    method: 'GET',
    paths: '/_matrix/client/v3/guests-too',
    resource: 'client',
    auth: 'guest',
    handle: ({ requester }) => ({ body: { user_id: requester.userId, is_guest: requester.isGuest } }),
  }),
  defineRoute({
    name: 'test.none',
    method: 'GET',
    paths: '/_matrix/client/v3/anyone',
    resource: 'client',
    handle: (req) => ({ body: { requester: 'requester' in req } }),
  }),
  defineRoute({
    name: 'test.server',
    method: 'PUT',
    paths: '/_matrix/federation/v1/send/{txnId}',
    resource: 'client',
    auth: 'server',
    body: jsonObject,
    handle: ({ origin, params, body }) => ({ body: { origin, txn_id: params.txnId, got: body } }),
  }),
  defineRoute({
    name: 'test.server.get',
    method: 'GET',
    paths: '/_matrix/federation/v1/thing',
    resource: 'client',
    auth: 'server',
    handle: ({ origin }) => ({ body: { origin } }),
  }),
  defineRoute({
    name: 'test.schema',
    method: 'POST',
    paths: '/_matrix/client/v3/schema',
    resource: 'client',
    body: z.object({
      room_version: optionalString,
      user_id: requiredString,
      limit: z.int().min(0).optional(),
      filter: z.object({ types: z.array(z.string()).optional() }).optional(),
      kind: z
        .string()
        .pipe(z.enum(['a', 'b']))
        .optional(),
      name: checked(z.string(), (name) => name.length <= 3, 'M_INVALID_USERNAME', 'too long').optional(),
    }),
    handle: ({ body }) => ({ body: { got: body } }),
  }),
  defineRoute({
    name: 'test.optional',
    method: 'POST',
    paths: '/_matrix/client/v3/optional',
    resource: 'client',
    body: optionalBody(z.object({ reason: optionalString })),
    handle: ({ body }) => ({ body: { got: body } }),
  }),
];

let listener: RunningListener | undefined;
const signed: SignedRequest[] = [];

async function serve(options: Partial<DispatcherOptions<null>>): Promise<string> {
  await listener?.close(0);
  const dispatcher = createDispatcher({
    routes,
    resources: new Set(['client']),
    services: null,
    log,
    trustForwardedFor: false,
    shutdownSignal: new AbortController().signal,
    authenticate: async (token) => {
      const requester = ACCOUNTS[token];
      if (!requester) throw Errors.unknownToken();
      return requester;
    },
    ...options,
  });
  listener = await startListener(
    {
      type: 'http',
      tls: false,
      x_forwarded: false,
      port: 0,
      bind_addresses: ['127.0.0.1'],
      resources: [{ names: ['client'], compress: false }],
    },
    dispatcher,
    log,
  );
  return listener.addresses[0]!;
}
after(() => listener?.close(0));

function call(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: string; authorization?: string } = {},
): Promise<TestResponse> {
  const authorization = options.authorization ?? (options.token ? `Bearer ${options.token}` : undefined);
  return request({ baseUrl }, method, path, {
    ...(options.body === undefined ? {} : { body: options.body }),
    headers: { 'Content-Type': 'application/json', ...(authorization ? { Authorization: authorization } : {}) },
  });
}

function assertError(res: TestResponse, status: number, errcode: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json?.errcode, errcode, res.text);
  assert.equal(typeof res.json?.error, 'string', res.text);
}

describe('auth kinds', () => {
  let baseUrl: string;
  before(async () => {
    baseUrl = await serve({});
  });

  test("'user': a full account gets in with its requester; a guest is 403 M_GUEST_ACCESS_FORBIDDEN; no token is 401", async () => {
    const ok = await call(baseUrl, 'GET', '/_matrix/client/v3/user-only', { token: 'user-token' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json, { user_id: '@alice:test' });
    assertError(await call(baseUrl, 'GET', '/_matrix/client/v3/user-only', { token: 'guest-token' }), 403, 'M_GUEST_ACCESS_FORBIDDEN');
    assertError(await call(baseUrl, 'GET', '/_matrix/client/v3/user-only'), 401, 'M_MISSING_TOKEN');
    assertError(await call(baseUrl, 'GET', '/_matrix/client/v3/user-only', { token: 'nobody' }), 401, 'M_UNKNOWN_TOKEN');
  });

  test("'guest': full accounts and guests alike", async () => {
    assert.deepEqual((await call(baseUrl, 'GET', '/_matrix/client/v3/guests-too', { token: 'user-token' })).json, {
      user_id: '@alice:test',
      is_guest: false,
    });
    assert.deepEqual((await call(baseUrl, 'GET', '/_matrix/client/v3/guests-too', { token: 'guest-token' })).json, {
      user_id: '@12:test',
      is_guest: true,
    });
    assertError(await call(baseUrl, 'GET', '/_matrix/client/v3/guests-too'), 401, 'M_MISSING_TOKEN');
  });

  test("'none': no token is read, not even a bad one", async () => {
    for (const token of [undefined, 'user-token', 'nobody']) {
      const res = await call(baseUrl, 'GET', '/_matrix/client/v3/anyone', token === undefined ? {} : { token });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { requester: false });
    }
  });

  test("'server' without an authenticator (federation not enabled): 401 M_UNAUTHORIZED, whatever the request carries", async () => {
    const authorization = 'X-Matrix origin="remote.example",key="ed25519:k",sig="c2ln"';
    assertError(await call(baseUrl, 'PUT', '/_matrix/federation/v1/send/t1', { body: '{}', authorization }), 401, 'M_UNAUTHORIZED');
    assertError(await call(baseUrl, 'GET', '/_matrix/federation/v1/thing', { token: 'user-token' }), 401, 'M_UNAUTHORIZED');
  });
});

describe("'server' routes with an authenticator", () => {
  let baseUrl: string;
  before(async () => {
    baseUrl = await serve({
      authenticateServer: async (req) => {
        signed.push(req);
        if (req.headers.authorization !== 'X-Matrix good') throw Errors.unauthorized('Invalid signature');
        return { origin: 'remote.example' };
      },
    });
  });

  test('the hook gets the method, the request target and the body bytes exactly as they came; the handler gets the origin', async () => {
    signed.length = 0;
    // Escapes and the query are part of what the origin signed; whitespace in the body too.
    const uri = '/_matrix/federation/v1/send/t%2F1?b=2&a=%41';
    const text = '{ "pdus" : [ ],\n"origin": "remote.example" }';
    const res = await call(baseUrl, 'PUT', uri, { body: text, authorization: 'X-Matrix good' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { origin: 'remote.example', txn_id: 't/1', got: { pdus: [], origin: 'remote.example' } });
    assert.equal(signed.length, 1);
    const [seen] = signed;
    assert.equal(seen!.method, 'PUT');
    assert.equal(seen!.uri, uri);
    assert.equal(seen!.rawBody?.toString('utf8'), text);
    assert.deepEqual(seen!.content, { pdus: [], origin: 'remote.example' });
  });

  test('a route without a body: no bytes and no content', async () => {
    signed.length = 0;
    const res = await call(baseUrl, 'GET', '/_matrix/federation/v1/thing', { authorization: 'X-Matrix good' });
    assert.deepEqual(res.json, { origin: 'remote.example' });
    assert.equal(signed[0]!.rawBody, undefined);
    assert.equal(signed[0]!.content, undefined);
  });

  test("the hook's refusal is the answer", async () => {
    assertError(
      await call(baseUrl, 'PUT', '/_matrix/federation/v1/send/t2', { body: '{}', authorization: 'X-Matrix bad' }),
      401,
      'M_UNAUTHORIZED',
    );
  });
});

describe('body schemas', () => {
  let baseUrl: string;
  before(async () => {
    baseUrl = await serve({});
  });
  const post = (body: unknown) => call(baseUrl, 'POST', '/_matrix/client/v3/schema', { body: JSON.stringify(body) });

  test('the handler gets the parsed body: unknown keys dropped, `null` read as absent where the schema says so', async () => {
    const res = await post({ user_id: '@a:b', room_version: null, limit: 3, extra: true });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { got: { user_id: '@a:b', limit: 3 } });
  });

  test('an absent required field: 400 M_MISSING_PARAM naming it (null too where null reads as absent)', async () => {
    for (const body of [{}, { user_id: null }]) {
      const res = await post(body);
      assertError(res, 400, 'M_MISSING_PARAM');
      assert.match(res.json.error, /"user_id"/);
    }
  });

  test('a field of the wrong type: 400 M_BAD_JSON with its path and the type expected', async () => {
    const cases: Array<[unknown, string]> = [
      [{ user_id: '@a:b', room_version: 10 }, '"room_version": expected a string'],
      [{ user_id: 5 }, '"user_id": expected a string'],
      [{ user_id: '@a:b', limit: 1.5 }, '"limit": expected an integer'],
      [{ user_id: '@a:b', filter: { types: ['m.room.message', 7] } }, '"filter.types[1]": expected a string'],
      [{ user_id: '@a:b', filter: [] }, '"filter": expected an object'],
      [{ user_id: '@a:b', kind: null }, '"kind": expected a string'],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      assertError(res, 400, 'M_BAD_JSON');
      assert.equal(res.json.error, message);
    }
  });

  test('a value out of its range or set: 400 M_INVALID_PARAM; a custom check answers its own errcode', async () => {
    let res = await post({ user_id: '@a:b', limit: -1 });
    assertError(res, 400, 'M_INVALID_PARAM');
    assert.match(res.json.error, /^"limit": /);
    res = await post({ user_id: '@a:b', kind: 'c' });
    assertError(res, 400, 'M_INVALID_PARAM');
    assert.equal(res.json.error, '"kind": expected "a" or "b"');
    res = await post({ user_id: '@a:b', name: 'long' });
    assertError(res, 400, 'M_INVALID_USERNAME');
    assert.equal(res.json.error, '"name": too long');
  });

  test('what the JSON layer refuses is refused before the schema: not JSON, not an object', async () => {
    assertError(await call(baseUrl, 'POST', '/_matrix/client/v3/schema', { body: '{' }), 400, 'M_NOT_JSON');
    assertError(await call(baseUrl, 'POST', '/_matrix/client/v3/schema', { body: '[]' }), 400, 'M_BAD_JSON');
    assertError(await call(baseUrl, 'POST', '/_matrix/client/v3/schema', { body: '' }), 400, 'M_NOT_JSON');
  });

  test('a schema that accepts an absent body makes it optional: empty reads as {}', async () => {
    for (const body of [undefined, '', '{}']) {
      const res = await call(baseUrl, 'POST', '/_matrix/client/v3/optional', body === undefined ? {} : { body });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { got: {} });
    }
    assert.deepEqual((await call(baseUrl, 'POST', '/_matrix/client/v3/optional', { body: '{"reason":"bye"}' })).json, {
      got: { reason: 'bye' },
    });
    assertError(await call(baseUrl, 'POST', '/_matrix/client/v3/optional', { body: '{"reason":1}' }), 400, 'M_BAD_JSON');
  });
});
