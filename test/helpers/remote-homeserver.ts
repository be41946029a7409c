// Another homeserver played by the test over real HTTPS on loopback, for the inbound federation
// API: its own signing key served at `/_matrix/key/v2/server` (Myelin's keyring fetches it like
// any server's), rooms held as DAGs in memory (`RemoteServer`, test/helpers/remote-server.ts)
// whose events it serves to Myelin's intake (`/event`, `/event_auth`, `/get_missing_events`,
// `/state_ids`), and requests to Myelin signed with `X-Matrix` (or mis-signed, for hostile tests).

import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import type { RoomVersion } from '../../src/core/room-versions.js';
import { buildOwnServerKeys } from '../../src/core/server-keys.js';
import { generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import { signRequest } from '../../src/core/x-matrix.js';
import { httpsCall, type HttpsAnswer } from './federation.js';
import { RemoteServer } from './remote-server.js';
import { makeCertificate } from './tls-certs.js';

export interface SignedCallOptions {
  /** Signs with this key instead of the server's own (a wrong key: same id, other key). */
  key?: SigningKey;
  /** The `destination` signed (default: the target's server name). */
  destination?: string;
  /** The `origin` claimed (default: this server's name). */
  origin?: string;
  /** Sent as the body instead of `body`'s JSON (malformed bodies); the signature covers `body`. */
  rawBody?: string;
}

export class RemoteHomeserver {
  readonly signingKey: SigningKey = generateSigningKey();
  /** Rooms this server takes part in, by room id. */
  readonly rooms = new Map<string, RemoteServer>();
  /** Every request Myelin made to it: method and path. */
  readonly requests: string[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  private constructor(private readonly nameKind: 'localhost' | 'ip') {}

  /** Starts listening on a free loopback port; named `localhost:<port>` or, with `ip`, `127.0.0.1:<port>`. */
  static async start(options: { name?: 'localhost' | 'ip' } = {}): Promise<RemoteHomeserver> {
    const remote = new RemoteHomeserver(options.name ?? 'localhost');
    const certificate = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const server = createHttpsServer({ cert: certificate.certPem, key: certificate.keyPem }, (req, res) => {
      void remote.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
      });
    });
    server.on('connection', (socket: Socket) => {
      remote.sockets.add(socket);
      socket.on('close', () => remote.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    remote.port = (server.address() as AddressInfo).port;
    remote.server = server;
    return remote;
  }

  get serverName(): string {
    return `${this.nameKind === 'ip' ? '127.0.0.1' : 'localhost'}:${this.port}`;
  }

  /** The DAG of a room of Myelin's this server takes part in (it learns Myelin's events with `learnFrom`). */
  room(roomId: string, version: RoomVersion, homeserver: { serverName: string; signingKey: SigningKey }): RemoteServer {
    let dag = this.rooms.get(roomId);
    if (!dag) {
      dag = new RemoteServer(this.serverName, roomId, version, homeserver, this.signingKey);
      this.rooms.set(roomId, dag);
    }
    return dag;
  }

  /** A request to `target` (a Myelin at `baseUrl` named `serverName`), signed with `X-Matrix`. */
  call(
    target: { baseUrl: string; serverName: string },
    method: string,
    path: string,
    body?: JsonValue,
    options: SignedCallOptions = {},
  ): Promise<HttpsAnswer> {
    const authorization = signRequest(
      {
        method,
        uri: path,
        origin: options.origin ?? this.serverName,
        destination: options.destination ?? target.serverName,
        ...(body === undefined ? {} : { content: body }),
      },
      options.key ?? this.signingKey,
    );
    if (options.rawBody !== undefined) {
      return httpsCall(target.baseUrl, method, path, {
        headers: { Authorization: authorization, 'Content-Type': 'application/json' },
        rawBody: options.rawBody,
      });
    }
    return httpsCall(target.baseUrl, method, path, { headers: { Authorization: authorization }, ...(body === undefined ? {} : { body }) });
  }

  /** `PUT /send/{txnId}` with these PDUs and EDUs. */
  send(target: { baseUrl: string; serverName: string }, txnId: string, pdus: JsonObject[], edus: JsonObject[] = []): Promise<HttpsAnswer> {
    return this.call(target, 'PUT', `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`, {
      origin: this.serverName,
      origin_server_ts: Date.now(),
      pdus,
      edus,
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- serving Myelin's requests ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://remote.invalid');
    this.requests.push(`${req.method} ${url.pathname}`);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonObject) : undefined;
    if (url.pathname.startsWith('/_matrix/key/v2/server')) {
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
    const parts = url.pathname.split('/').map(decodeURIComponent);
    // ['', '_matrix', 'federation', 'v1', endpoint, ...]
    const [endpoint, first, second] = [parts[4], parts[5], parts[6]];
    const envelope = (pdus: unknown[]) => ({ origin: this.serverName, origin_server_ts: Date.now(), pdus });
    try {
      if (endpoint === 'event' && first) {
        const dag = [...this.rooms.values()].find((d) => d.pdus.has(first));
        if (!dag) return json(404, { errcode: 'M_NOT_FOUND', error: 'no such event' });
        return json(200, envelope([await dag.fetcher.getEvent(this.serverName, first)]));
      }
      const dag = first ? this.rooms.get(first) : undefined;
      if (!dag) return json(404, { errcode: 'M_NOT_FOUND', error: 'unknown room' });
      if (endpoint === 'event_auth' && second)
        return json(200, { auth_chain: await dag.fetcher.getEventAuth(this.serverName, first!, second) });
      if (endpoint === 'state_ids') {
        const answer = await dag.fetcher.getStateIds(this.serverName, first!, url.searchParams.get('event_id') ?? '');
        return json(200, { pdu_ids: answer.pduIds, auth_chain_ids: answer.authChainIds });
      }
      if (endpoint === 'get_missing_events' && body) {
        const events = await dag.fetcher.getMissingEvents(this.serverName, first!, {
          earliest: body.earliest_events as string[],
          latest: body.latest_events as string[],
          limit: Number(body.limit ?? 10),
          minDepth: Number(body.min_depth ?? 0),
        });
        return json(200, { events });
      }
    } catch (err) {
      return json(404, { errcode: 'M_NOT_FOUND', error: String(err) });
    }
    return json(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
  }
}
