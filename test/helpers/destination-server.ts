// A homeserver of the test's own that our federation sender sends to: an HTTPS server on
// loopback, named `localhost:<port>`, with its own ed25519 signing key served at
// `/_matrix/key/v2/server`, that records the transactions `PUT /_matrix/federation/v1/send/{txnId}`
// brings after checking their `X-Matrix` signature against the sender's published key (fetched
// from the sender over TLS like a real server would, or given by the test). It can be taken down
// and brought up again on the same port, and made to answer errors.

import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import { buildOwnServerKeys, validateServerKeysResponse, verifyKeysOf, type ServerVerifyKey } from '../../src/core/server-keys.js';
import { readXMatrixHeader, signRequest, verifyXMatrixRequest } from '../../src/core/x-matrix.js';
import { parseEdu, type Edu } from '../../src/core/edus.js';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import { httpsCall } from './federation.js';
import { makeCertificate, type TestCertificate } from './tls-certs.js';

export interface ReceivedTransaction {
  txnId: string;
  origin: string;
  pdus: JsonObject[];
  edus: Array<{ edu_type: string; content: JsonObject }>;
  /** Its position among all `/send` requests answered 200. */
  index: number;
}

/** A federation request other than `/send`, its `X-Matrix` signature verified. */
export interface ServedRequest {
  method: string;
  /** The path, percent-decoded, without the query. */
  path: string;
  origin: string;
  body: JsonObject | undefined;
}

/** What the test answers to a `ServedRequest`: a status and JSON body, or undefined for 404. */
export type RequestHandler = (
  request: ServedRequest,
) => { status: number; body: unknown } | undefined | Promise<{ status: number; body: unknown } | undefined>;

/** What the server answers to `/send`: 200, or an error status. */
export type SendBehaviour = 'ok' | { status: number; errcode?: string };

export class TestDestination {
  readonly signingKey: SigningKey = generateSigningKey();
  /** Transactions answered 200, in order; a repeated txn id is recorded again (see `duplicates`). */
  readonly transactions: ReceivedTransaction[] = [];
  /** Every `/send` request that reached the server (answered 200 or not), txn ids in order. */
  readonly attempts: string[] = [];
  /** Requests whose X-Matrix signature did not verify (the server answered 401). */
  readonly refusedSignatures: string[] = [];
  behaviour: SendBehaviour = 'ok';
  /** Answers the other federation requests (as a remote homeserver); without it they get 404. */
  onRequest: RequestHandler | undefined;
  /** Every other federation request that verified, in order. */
  readonly requests: ServedRequest[] = [];
  /** Delay before answering each `/send` (lets PDUs pile up into fuller transactions). */
  delayMs = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly originKeys = new Map<string, ServerVerifyKey[]>();
  private readonly certificate: TestCertificate;
  port = 0;

  private constructor(certificate?: TestCertificate) {
    this.certificate = certificate ?? makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  }

  static async start(options: { certificate?: TestCertificate } = {}): Promise<TestDestination> {
    const destination = new TestDestination(options.certificate);
    await destination.up();
    return destination;
  }

  get serverName(): string {
    return `localhost:${this.port}`;
  }

  /** Trust this key of `origin` instead of fetching it (for senders nobody can reach). */
  trustKey(key: ServerVerifyKey): void {
    this.originKeys.set(key.serverName, [...(this.originKeys.get(key.serverName) ?? []), key]);
  }

  /** Starts listening (again, on the same port once it had one). */
  async up(): Promise<void> {
    if (this.server) return;
    const server = createHttpsServer({ cert: this.certificate.certPem, key: this.certificate.keyPem }, (req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent)
          res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errcode: 'M_UNKNOWN', error: String(err) }));
      });
    });
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and drops every connection: the server is down. */
  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async stop(): Promise<void> {
    await this.down();
  }

  // ---- what arrived ----

  /** Every PDU received, in order of arrival (repeats included). */
  pdus(): JsonObject[] {
    return this.transactions.flatMap((t) => t.pdus);
  }

  /** The `body` of each `m.room.message` received, in order of arrival. */
  messageBodies(roomId?: string): string[] {
    return this.pdus()
      .filter((p) => p.type === 'm.room.message' && (roomId === undefined || p.room_id === roomId))
      .map((p) => (p.content as JsonObject).body as string);
  }

  /** The EDUs received, parsed as a receiving server does (spec shapes; failures thrown). */
  edus(origin: string): Edu[] {
    const parsed: Edu[] = [];
    for (const txn of this.transactions) {
      for (const edu of txn.edus) {
        const result = parseEdu(edu, { origin, localServerName: this.serverName });
        if (!result.ok) throw new Error(`an EDU of ${origin} does not parse: ${result.error.message}: ${JSON.stringify(edu)}`);
        if (result.skipped.length > 0) throw new Error(`parts of an EDU of ${origin} were skipped: ${JSON.stringify(result.skipped)}`);
        parsed.push(result.edu);
      }
    }
    return parsed;
  }

  /**
   * A signed request from this server to `destination`, as its `Authorization` header (for tests
   * that make this server "contact" the sender through its request authentication).
   */
  authorization(destination: string, method: string, uri: string, content?: JsonValue): string {
    return signRequest(
      { method, uri, origin: this.serverName, destination, ...(content === undefined ? {} : { content }) },
      this.signingKey,
    );
  }

  // ---- serving ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.startsWith('/_matrix/key/v2/server')) {
      return json(
        200,
        buildOwnServerKeys({
          serverName: this.serverName,
          signingKeys: [this.signingKey],
          now: Date.now(),
          keyRefreshIntervalMs: 86_400_000,
        }),
      );
    }
    const send = /^\/_matrix\/federation\/v1\/send\/([^/?]+)$/.exec(url);
    if (req.method !== 'PUT' || !send) return this.serveOther(req, url, json);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonObject;
    const txnId = decodeURIComponent(send[1]!);
    this.attempts.push(txnId);
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));

    const header = readXMatrixHeader(req.headers.authorization, this.serverName);
    if (!header.ok) {
      this.refusedSignatures.push(txnId);
      return json(401, { errcode: 'M_UNAUTHORIZED', error: header.failure.message });
    }
    const { origin, keyId } = header.credentials;
    const key = (await this.keysOf(origin)).find((k) => k.keyId === keyId);
    const verified = verifyXMatrixRequest(header.credentials, { method: 'PUT', uri: url, content: body }, this.serverName, key, Date.now());
    if (!verified.ok) {
      this.refusedSignatures.push(txnId);
      return json(401, { errcode: 'M_UNAUTHORIZED', error: verified.failure.message });
    }
    if (this.behaviour !== 'ok')
      return json(this.behaviour.status, { errcode: this.behaviour.errcode ?? 'M_UNKNOWN', error: 'the test says no' });
    const pdus = (body.pdus ?? []) as JsonObject[];
    const edus = (body.edus ?? []) as Array<{ edu_type: string; content: JsonObject }>;
    this.transactions.push({ txnId, origin, pdus, edus, index: this.transactions.length });
    return json(200, { pdus: {} });
  }

  private async serveOther(req: IncomingMessage, url: string, json: (status: number, body: unknown) => void): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body = text === '' ? undefined : (JSON.parse(text) as JsonObject);
    const header = readXMatrixHeader(req.headers.authorization, this.serverName);
    if (!header.ok) return json(401, { errcode: 'M_UNAUTHORIZED', error: header.failure.message });
    const { origin, keyId } = header.credentials;
    const key = (await this.keysOf(origin)).find((k) => k.keyId === keyId);
    const verified = verifyXMatrixRequest(
      header.credentials,
      { method: req.method ?? 'GET', uri: url, ...(body === undefined ? {} : { content: body }) },
      this.serverName,
      key,
      Date.now(),
    );
    if (!verified.ok) return json(401, { errcode: 'M_UNAUTHORIZED', error: verified.failure.message });
    const request: ServedRequest = { method: req.method ?? 'GET', path: decodeURIComponent(url.split('?')[0]!), origin, body };
    this.requests.push(request);
    const answer = await this.onRequest?.(request);
    if (!answer) return json(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
    return json(answer.status, answer.body);
  }

  /** The origin's current keys: as trusted by the test, else fetched from it over TLS. */
  private async keysOf(origin: string): Promise<ServerVerifyKey[]> {
    const known = this.originKeys.get(origin);
    if (known) return known;
    const port = /:(\d+)$/.exec(origin)?.[1];
    const answer = await httpsCall(`https://127.0.0.1:${port}`, 'GET', '/_matrix/key/v2/server');
    const keys = validateServerKeysResponse(answer.json, origin);
    if (!keys.ok) throw new Error(`the keys of ${origin} do not validate: ${keys.error.message}`);
    const verifyKeys = verifyKeysOf(keys.keys, Date.now());
    this.originKeys.set(origin, verifyKeys);
    return verifyKeys;
  }
}
