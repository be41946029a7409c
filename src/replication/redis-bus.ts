// The replication bus of worker mode: Redis pub/sub, Synapse's line commands.
//
// Every process keeps two connections to Redis: a subscriber on the channels `<server_name>` (and
// `<server_name>/USER_IP` on main and the background worker), and a publisher. A writer's update
// is delivered to this process's subscribers at once and goes out as RDATA lines, every row but
// the last tagged `batch`. Other processes gather a batch per (stream, writer) and deliver it as
// one update when the line with the position arrives.
//
// Pub/sub drops whatever is published while a connection is down, so RDATA alone cannot be
// trusted. A reader trusts a writer's RDATA only after a POSITION from that writer has arrived on
// its current subscription: POSITION says "complete up to new_token, nothing written after
// prev_token", so a reader that has seen less than prev_token knows it missed rows and fetches them
// through `StreamCatchUp` before anything later from that writer. Readers ask for POSITIONs with
// REPLICATE after every (re)subscription; writers also send them every few seconds, and before the
// first RDATA of a stream after they could not publish, so a gap never goes unnoticed.

import { Redis, type RedisOptions } from 'ioredis';
import { STREAM_NAMES, type StreamName } from '../streams/streams.js';
import { componentLogger, type Logger } from '../util/log.js';
import { InMemoryBus, type BusCommand, type ReplicationBus, type StreamRow, type StreamUpdate } from '../streams/bus.js';
import type { StartingPosition, StreamCatchUp } from './catch-up.js';
import {
  decodeCommand,
  encodeCommand,
  type PositionCommand,
  type RdataCommand,
  type ReplicationCommand,
} from './commands.js';

/** The `redis` block of the config (`src/config/schema.ts`). */
export interface RedisConnectionConfig {
  path?: string | undefined;
  host: string;
  port: number;
  password?: string | undefined;
  dbid?: number | undefined;
}

export interface RedisBusOptions {
  serverName: string;
  instanceName: string;
  redis: RedisConnectionConfig;
  log: Logger;
  /** Also subscribe to `<server_name>/USER_IP` (main and the background worker). */
  userIpChannel: boolean;
  catchUp: StreamCatchUp;
  /**
   * The positions this process's state was loaded at, per writer. A writer listed here is caught
   * up from that position on its first POSITION; a writer not listed starts at its first
   * POSITION, without catching up.
   */
  initialPositions?: readonly StartingPosition[];
  /** How often this process announces the positions of the streams it writes. */
  positionIntervalMs?: number;
}

const DEFAULT_POSITION_INTERVAL_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 5_000;
const MAX_LOGGED_LINE = 200;

/** Exponential back-off, capped: 100 ms, 200 ms, ... 5 s, then every 5 s forever. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 16), MAX_RECONNECT_DELAY_MS);
}

const STREAMS: ReadonlySet<string> = new Set(STREAM_NAMES);

function isStreamName(name: string): name is StreamName {
  return STREAMS.has(name);
}

function isRowOf(stream: StreamName, row: unknown): row is StreamRow {
  return typeof row === 'object' && row !== null && !Array.isArray(row) && (row as { stream?: unknown }).stream === stream;
}

/** Synapse's way of printing a list of channels, so its log lines and ours read alike. */
function formatChannels(channels: readonly string[]): string {
  return `[${channels.map((c) => `'${c}'`).join(', ')}]`;
}

function remoteKey(stream: StreamName, instance: string): string {
  return `${stream} ${instance}`;
}

/** What this process knows of one writer's stream. */
interface RemoteStream {
  stream: StreamName;
  instance: string;
  /** Everything up to here has been delivered (or predates this process's state). */
  position: number | undefined;
  /** The subscription on which a POSITION made this writer's RDATA trustworthy; -1: none yet. */
  trustedEpoch: number;
  /** Rows of an update whose last line has not arrived yet. */
  batch: StreamRow[];
  /** Commands waiting while a catch-up is in flight, so nothing overtakes the fetched rows. */
  queue: Array<{ command: RdataCommand | PositionCommand; epoch: number }>;
  catchingUp: boolean;
  retry: NodeJS.Timeout | undefined;
  failures: number;
}

export class RedisBus implements ReplicationBus {
  private readonly local = new InMemoryBus();
  private readonly log: Logger;
  private readonly serverName: string;
  private readonly instanceName: string;
  private readonly catchUp: StreamCatchUp;
  private readonly channels: string[];
  private readonly address: string;
  private readonly subscriber: Redis;
  private readonly publisher: Redis;
  private readonly positionIntervalMs: number;
  private readonly remotes = new Map<string, RemoteStream>();
  /** Bumped whenever the subscription is lost: lines from before and after are not one sequence. */
  private epoch = 0;
  /** The last position of each of our streams that we sent (or tried to send) to Redis. */
  private readonly sent = new Map<StreamName, number>();
  /** Our streams whose RDATA may have been lost: a POSITION goes out before their next RDATA. */
  private readonly unannounced = new Set<StreamName>();
  private announceScheduled = false;
  private positionTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closed = false;
  private droppingSince: number | undefined;
  private readonly publisherWaiters = new Set<() => void>();
  private readonly replicating: Promise<void>;
  private markReplicating!: () => void;

  constructor(options: RedisBusOptions) {
    this.log = componentLogger(options.log, 'replication.redis');
    this.serverName = options.serverName;
    this.instanceName = options.instanceName;
    this.catchUp = options.catchUp;
    this.positionIntervalMs = options.positionIntervalMs ?? DEFAULT_POSITION_INTERVAL_MS;
    this.channels = options.userIpChannel ? [`${this.serverName}/USER_IP`, this.serverName] : [this.serverName];
    for (const start of options.initialPositions ?? []) {
      this.remoteFor(start.stream, start.instance).position = start.position;
    }
    this.replicating = new Promise((resolve) => (this.markReplicating = resolve));

    const { path, host, port, password, dbid } = options.redis;
    this.address = path ?? `${host}:${port}`;
    const connection: RedisOptions = {
      ...(path !== undefined ? { path } : { host, port }),
      ...(password !== undefined ? { password } : {}),
      db: dbid ?? 0,
      lazyConnect: true,
      retryStrategy: reconnectDelay,
      // Nothing waits in ioredis's queues while disconnected: what cannot be sent now is dropped
      // here, deliberately (see `publish`).
      enableOfflineQueue: false,
      maxRetriesPerRequest: null,
    };
    const name = this.instanceName.replace(/\s/g, '_');
    // The subscription is renewed by hand on every connection, so the log shows each step.
    this.subscriber = new Redis({ ...connection, autoResubscribe: false, connectionName: `myelin-${name}-subscriber` });
    this.publisher = new Redis({ ...connection, connectionName: `myelin-${name}-publisher` });
    this.watch(this.subscriber, 'subscriber');
    this.watch(this.publisher, 'publisher');
    this.subscriber.on('message', (_channel: string, message: string) => this.onMessage(message));
  }

  /**
   * Connects (and keeps reconnecting forever). Resolves once the first subscription is made and
   * REPLICATE sent; callers that must not wait for Redis need not await it.
   */
  start(): Promise<void> {
    if (!this.started && !this.closed) {
      this.started = true;
      this.subscriber.connect().catch(() => undefined);
      this.publisher.connect().catch(() => undefined);
      this.positionTimer = setInterval(() => this.announcePositions(), this.positionIntervalMs);
      this.positionTimer.unref();
    }
    return this.replicating;
  }

  /** Both connections are up. */
  get connected(): boolean {
    return this.subscriber.status === 'ready' && this.publisher.status === 'ready';
  }

  /**
   * How far this process has received another instance's stream (undefined: not heard of it yet).
   * Every row at or below it has been delivered to the subscribers.
   */
  positionOf(stream: StreamName, instance: string): number | undefined {
    return this.remotes.get(remoteKey(stream, instance))?.position;
  }

  publish(update: StreamUpdate): void {
    try {
      this.local.publish(update);
    } finally {
      this.forward(update);
    }
  }

  subscribe(listener: (update: StreamUpdate) => void): () => void {
    return this.local.subscribe(listener);
  }

  /**
   * Publishes the command; every subscribed process receives it, this one included (through
   * Redis, as Synapse does). Dropped with a warning while Redis is unreachable.
   */
  send(command: BusCommand): void {
    const channel = command.name === 'USER_IP' ? `${this.serverName}/USER_IP` : this.serverName;
    if (!this.canTransmit()) {
      this.log.warn({ command: command.name }, 'Dropping command as not connected to redis');
      return;
    }
    let line: string;
    try {
      line = encodeCommand(command);
    } catch (err) {
      this.log.error({ err, command: command.name }, 'Cannot encode a replication command');
      return;
    }
    this.transmit(channel, [line]).catch((err: unknown) => {
      this.log.warn({ err, command: command.name }, 'Failed to send a command to redis');
    });
  }

  onCommand(listener: (command: BusCommand) => void): () => void {
    return this.local.onCommand(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.positionTimer);
    for (const remote of this.remotes.values()) clearTimeout(remote.retry);
    for (const wake of this.publisherWaiters) wake();
    await Promise.all([closeConnection(this.subscriber), closeConnection(this.publisher)]);
  }

  // --- connections -------------------------------------------------------------------------

  private watch(connection: Redis, role: 'subscriber' | 'publisher'): void {
    const log = this.log.child({ connection: role });
    let failing = false;
    let wasReady = false;
    connection.on('connecting', () => log.info(`Connecting to redis server at ${this.address}`));
    connection.on('ready', () => {
      failing = false;
      wasReady = true;
      log.info('Connected to redis');
      if (role === 'subscriber') {
        void this.subscribeAndReplicate();
      } else {
        for (const wake of this.publisherWaiters) wake();
        // Readers may have missed our RDATA while the publisher was away (even if their own
        // connections never dropped): our positions tell them.
        this.scheduleAnnounce();
      }
    });
    connection.on('error', (err: Error) => {
      // One warning per outage; every retry after it is only worth a debug line.
      if (failing) log.debug({ err: err.message }, `Connection to redis server at ${this.address} failed`);
      else log.warn(`Connection to redis server at ${this.address} failed: ${err.message}`);
      failing = true;
    });
    connection.on('close', () => {
      if (this.closed) return;
      if (wasReady) log.warn('Lost connection to redis');
      wasReady = false;
      if (role === 'subscriber') this.epoch++;
      else for (const stream of this.sent.keys()) this.unannounced.add(stream);
    });
    connection.on('reconnecting', (delay: number) => log.debug(`Reconnecting to redis in ${delay} ms`));
  }

  private async subscribeAndReplicate(): Promise<void> {
    const epoch = this.epoch;
    this.log.info(`Sending redis SUBSCRIBE for ${formatChannels(this.channels)}`);
    try {
      await this.subscriber.subscribe(...this.channels);
    } catch (err) {
      if (this.closed || epoch !== this.epoch) return;
      // A refused SUBSCRIBE on a live connection: start the connection over.
      this.log.error({ err }, 'Redis SUBSCRIBE failed; reconnecting');
      this.subscriber.disconnect(true);
      return;
    }
    if (this.closed || epoch !== this.epoch) return;
    // Only now: a REPLICATE sent before the subscription holds would miss the POSITIONs it asks for.
    this.log.info('Successfully subscribed to redis stream, sending REPLICATE command');
    for (let attempt = 1; ; attempt++) {
      await this.publisherReady();
      if (this.closed || epoch !== this.epoch) return;
      try {
        await this.transmit(this.serverName, [encodeCommand({ name: 'REPLICATE' })]);
        break;
      } catch (err) {
        const delay = reconnectDelay(attempt);
        this.log.warn({ err }, `Sending REPLICATE failed; trying again in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    this.log.info('REPLICATE successfully sent');
    this.markReplicating();
    // Other processes may have missed our RDATA while we were away; they learn it from these.
    this.announcePositions();
  }

  private publisherReady(): Promise<void> {
    if (this.publisher.status === 'ready' || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.publisherWaiters.delete(wake);
        resolve();
      };
      this.publisherWaiters.add(wake);
    });
  }

  private canTransmit(): boolean {
    return !this.closed && this.publisher.status === 'ready';
  }

  /** Publishes lines on one channel, in order (one round trip for a batch). */
  private async transmit(channel: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 1) {
      await this.publisher.publish(channel, lines[0]!);
      return;
    }
    const pipeline = this.publisher.pipeline();
    for (const line of lines) pipeline.publish(channel, line);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
  }

  // --- writing -----------------------------------------------------------------------------

  /**
   * Sends our update as RDATA. While Redis is unreachable the lines are dropped rather than
   * queued: readers fetch what they missed once they see our next POSITION, so a queue would only
   * cost memory and send stale rows late. The stream is marked so that a POSITION precedes its
   * next RDATA; without it a reader could take that RDATA as following on from what it has.
   */
  private forward(update: StreamUpdate): void {
    if (this.closed) return;
    const { stream, position } = update;
    const previous = this.sent.get(stream);
    if (!this.canTransmit()) {
      this.sent.set(stream, Math.max(previous ?? position, position));
      this.unannounced.add(stream);
      if (this.droppingSince === undefined) {
        this.droppingSince = Date.now();
        this.log.warn('Not connected to redis: dropping RDATA until reconnected; readers catch up from POSITION then');
      }
      return;
    }
    if (this.droppingSince !== undefined) {
      this.log.info({ outageMs: Date.now() - this.droppingSince }, 'Sending RDATA to redis again');
      this.droppingSince = undefined;
    }
    const lines: string[] = [];
    try {
      if (this.unannounced.has(stream) || previous === undefined || update.rows.length === 0) {
        // The previous position we sent (or, before our first, this one): a reader that has seen
        // less fetches up to it before taking the RDATA that follow.
        const prev = previous ?? position;
        const next = update.rows.length === 0 ? Math.max(prev, position) : prev;
        lines.push(encodeCommand({ name: 'POSITION', stream, instance: this.instanceName, prevToken: prev, newToken: next }));
      }
      update.rows.forEach((row, i) => {
        const token = i === update.rows.length - 1 ? position : 'batch';
        lines.push(encodeCommand({ name: 'RDATA', stream, instance: this.instanceName, token, row }));
      });
    } catch (err) {
      this.log.error({ err, stream, position }, 'Cannot encode a stream update as RDATA; readers fetch it after the next POSITION');
      this.sent.set(stream, Math.max(previous ?? position, position));
      this.unannounced.add(stream);
      return;
    }
    this.sent.set(stream, Math.max(previous ?? position, position));
    this.unannounced.delete(stream);
    this.transmit(this.serverName, lines).catch((err: unknown) => {
      this.unannounced.add(stream);
      this.log.warn({ err, stream, position }, 'Publishing RDATA to redis failed; readers catch up from the next POSITION');
    });
  }

  /** Answers REPLICATE: every REPLICATE arriving in one turn of the event loop gets one answer. */
  private scheduleAnnounce(): void {
    if (this.announceScheduled) return;
    this.announceScheduled = true;
    setImmediate(() => {
      this.announceScheduled = false;
      this.announcePositions();
    });
  }

  /** `POSITION <stream> <us> <last sent> <current>` for every stream this process writes. */
  private announcePositions(): void {
    if (!this.canTransmit()) return;
    let written: Array<{ stream: StreamName; position: number }>;
    try {
      written = this.catchUp.writtenStreams();
    } catch (err) {
      this.log.error({ err }, 'Cannot read the positions of the streams this process writes');
      return;
    }
    if (written.length === 0) return;
    const lines: string[] = [];
    for (const { stream, position } of written) {
      const previous = this.sent.get(stream);
      const next = Math.max(position, previous ?? position);
      lines.push(encodeCommand({ name: 'POSITION', stream, instance: this.instanceName, prevToken: previous ?? next, newToken: next }));
      this.sent.set(stream, next);
      this.unannounced.delete(stream);
    }
    this.transmit(this.serverName, lines).catch((err: unknown) => {
      for (const { stream } of written) this.unannounced.add(stream);
      this.log.warn({ err }, 'Sending POSITION to redis failed');
    });
  }

  // --- reading -----------------------------------------------------------------------------

  private onMessage(message: string): void {
    if (this.closed || message.trim() === '') return;
    let command: ReplicationCommand;
    try {
      command = decodeCommand(message);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, line: message.slice(0, MAX_LOGGED_LINE) }, 'Failed to parse replication line');
      return;
    }
    switch (command.name) {
      case 'RDATA':
      case 'POSITION':
        this.onStreamCommand(command);
        return;
      case 'REPLICATE':
        this.scheduleAnnounce();
        return;
      case 'NAME':
      case 'PING':
        return;
      default:
        try {
          this.local.send(command);
        } catch (err) {
          this.log.error({ err, command: command.name }, 'A replication command listener failed');
        }
    }
  }

  private onStreamCommand(command: RdataCommand | PositionCommand): void {
    if (command.instance === this.instanceName) return; // our own, delivered when published
    if (!isStreamName(command.stream)) {
      this.log.debug({ stream: command.stream, writer: command.instance }, `Ignoring ${command.name} for an unknown stream`);
      return;
    }
    const remote = this.remoteFor(command.stream, command.instance);
    remote.queue.push({ command, epoch: this.epoch });
    this.drain(remote);
  }

  private remoteFor(stream: StreamName, instance: string): RemoteStream {
    const key = remoteKey(stream, instance);
    let remote = this.remotes.get(key);
    if (!remote) {
      remote = { stream, instance, position: undefined, trustedEpoch: -1, batch: [], queue: [], catchingUp: false, retry: undefined, failures: 0 };
      this.remotes.set(key, remote);
    }
    return remote;
  }

  private drain(remote: RemoteStream): void {
    while (!remote.catchingUp && !this.closed) {
      const next = remote.queue.shift();
      if (!next) return;
      if (next.command.name === 'RDATA') this.onRdata(remote, next.command, next.epoch);
      else this.onPosition(remote, next.command, next.epoch);
    }
  }

  private onRdata(remote: RemoteStream, command: RdataCommand, epoch: number): void {
    if (remote.trustedEpoch !== epoch) {
      this.log.debug({ stream: remote.stream, writer: remote.instance, token: command.token }, 'Discarding RDATA until a POSITION arrives');
      return;
    }
    if (!isRowOf(remote.stream, command.row)) {
      this.log.warn({ stream: remote.stream, writer: remote.instance, token: command.token }, 'Ignoring an RDATA row of the wrong shape');
      return;
    }
    remote.batch.push(command.row);
    if (command.token === 'batch') return;
    const rows = remote.batch;
    remote.batch = [];
    if (remote.position !== undefined && command.token <= remote.position) {
      this.log.debug({ stream: remote.stream, writer: remote.instance, token: command.token }, 'Discarding RDATA already seen');
      return;
    }
    remote.position = command.token;
    this.deliver({ stream: remote.stream, instance: remote.instance, position: command.token, rows });
  }

  private onPosition(remote: RemoteStream, command: PositionCommand, epoch: number): void {
    const { stream, instance } = remote;
    const { prevToken, newToken } = command;
    // A batch cut short (the writer lost its connection mid-way) is fetched whole below.
    remote.batch = [];
    clearTimeout(remote.retry);
    remote.retry = undefined;
    const seen = remote.position;
    if (seen === undefined) {
      this.log.debug({ stream, writer: instance, position: newToken }, 'Following a new stream writer from its current position');
      remote.position = newToken;
      remote.trustedEpoch = epoch;
      // Subscribers learn where the writer stands (a stream with several writers is read up to
      // the lowest of them, so an unannounced writer would hold the stream back).
      this.deliver({ stream, instance, position: newToken, rows: [] });
      return;
    }
    if (seen > newToken) {
      // Only an in-memory stream (typing) goes back, when its writer restarts.
      this.log.info(`Stream '${stream}' / ${instance} went back from ${seen} to ${newToken}: its writer restarted`);
      remote.position = newToken;
      remote.trustedEpoch = epoch;
      return;
    }
    if (seen >= prevToken) {
      remote.trustedEpoch = epoch;
      if (newToken > seen) {
        remote.position = newToken;
        this.deliver({ stream, instance, position: newToken, rows: [] });
      }
      return;
    }
    remote.trustedEpoch = -1;
    remote.catchingUp = true;
    this.log.info(`Fetching replication rows for '${stream}' / ${instance} between ${seen} and ${newToken}`);
    this.catchUp.rowsBetween(stream, instance, seen, newToken).then(
      (rows) => {
        if (this.closed) return;
        remote.failures = 0;
        remote.position = newToken;
        remote.trustedEpoch = epoch;
        this.deliver({ stream, instance, position: newToken, rows });
        this.log.info(`Caught up with stream '${stream}' / ${instance} to ${newToken}`);
      },
      (err: unknown) => {
        if (this.closed) return;
        const delay = reconnectDelay(++remote.failures);
        this.log.warn({ err, stream, writer: instance }, `Failed to fetch replication rows between ${seen} and ${newToken}; retrying in ${delay} ms`);
        // A newer POSITION from the writer replaces this retry (see above).
        remote.retry = setTimeout(() => {
          remote.retry = undefined;
          remote.queue.unshift({ command, epoch });
          this.drain(remote);
        }, delay);
        remote.retry.unref();
      },
    ).finally(() => {
      remote.catchingUp = false;
      this.drain(remote);
    });
  }

  private deliver(update: StreamUpdate): void {
    try {
      this.local.publish(update);
    } catch (err) {
      this.log.error({ err, stream: update.stream, writer: update.instance }, 'A replication subscriber failed');
    }
  }
}

async function closeConnection(connection: Redis): Promise<void> {
  const status = connection.status;
  if (status === 'end') return;
  // Only a live socket emits `end` once closed; a connection between attempts just stops retrying.
  const ended = ['connect', 'connecting', 'ready'].includes(status) ? new Promise((resolve) => connection.once('end', resolve)) : undefined;
  if (status === 'ready') {
    await connection.quit().catch(() => connection.disconnect());
  } else {
    connection.disconnect();
  }
  await ended;
}
