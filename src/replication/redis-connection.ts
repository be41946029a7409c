// The two connections a process keeps to Redis for replication: a subscriber on the replication
// channels and a publisher. Both retry forever (100 ms doubling to 5 s) and log each step in the
// words of Synapse's guide, so admins find what they search for. The subscription is renewed by
// hand on every connection; each renewal starts a new `epoch`, because lines received before and
// after a lost subscription are not one sequence.

import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../util/log.js';

/** The `redis` block of the config (`src/config/schema.ts`). */
export interface RedisConnectionConfig {
  path?: string | undefined;
  host: string;
  port: number;
  password?: string | undefined;
  dbid?: number | undefined;
}

const MAX_RECONNECT_DELAY_MS = 5_000;

/** Exponential back-off, capped: 100 ms, 200 ms, ... 5 s, then every 5 s forever. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 16), MAX_RECONNECT_DELAY_MS);
}

/** What the connections tell their owner. */
export interface RedisConnectionEvents {
  /** A line arrived on a subscribed channel. */
  message(line: string): void;
  /** The subscription holds (again); lines from now on belong to `epoch`. */
  subscribed(epoch: number): void;
  /** The publisher can publish (again). */
  publisherReady(): void;
  /** The publisher's connection closed: what it published lately may not have reached anyone. */
  publisherLost(): void;
}

export interface RedisConnectionOptions {
  redis: RedisConnectionConfig;
  instanceName: string;
  /** The channels to subscribe to. */
  channels: readonly string[];
  log: Logger;
  events: RedisConnectionEvents;
}

/** Synapse's way of printing a list of channels, so its log lines and ours read alike. */
function formatChannels(channels: readonly string[]): string {
  return `[${channels.map((c) => `'${c}'`).join(', ')}]`;
}

export class RedisConnection {
  private readonly log: Logger;
  private readonly events: RedisConnectionEvents;
  private readonly channels: readonly string[];
  private readonly address: string;
  private readonly subscriber: Redis;
  private readonly publisher: Redis;
  private readonly publisherWaiters = new Set<() => void>();
  private started = false;
  private closed = false;
  /** Bumped whenever the subscription is lost. */
  private subscription = 0;

  constructor(options: RedisConnectionOptions) {
    this.log = options.log;
    this.events = options.events;
    this.channels = options.channels;
    const { path, host, port, password, dbid } = options.redis;
    this.address = path ?? `${host}:${port}`;
    const connection: RedisOptions = {
      ...(path !== undefined ? { path } : { host, port }),
      ...(password !== undefined ? { password } : {}),
      db: dbid ?? 0,
      lazyConnect: true,
      retryStrategy: reconnectDelay,
      // Nothing waits in ioredis's queues while disconnected: what cannot be sent now is dropped
      // by the caller, deliberately (see the announcer).
      enableOfflineQueue: false,
      maxRetriesPerRequest: null,
    };
    const name = options.instanceName.replace(/\s/g, '_');
    this.subscriber = new Redis({ ...connection, autoResubscribe: false, connectionName: `myelin-${name}-subscriber` });
    this.publisher = new Redis({ ...connection, connectionName: `myelin-${name}-publisher` });
    this.watch(this.subscriber, 'subscriber');
    this.watch(this.publisher, 'publisher');
    this.subscriber.on('message', (_channel: string, message: string) => this.events.message(message));
  }

  /** Connects both, and keeps reconnecting forever. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.subscriber.connect().catch(() => undefined);
    this.publisher.connect().catch(() => undefined);
  }

  /** Both connections are up. */
  get connected(): boolean {
    return this.subscriber.status === 'ready' && this.publisher.status === 'ready';
  }

  /** The current subscription (see `RedisConnectionEvents.subscribed`). */
  get epoch(): number {
    return this.subscription;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The publisher is connected: a line published now is sent (though Redis may still lose it). */
  canTransmit(): boolean {
    return !this.closed && this.publisher.status === 'ready';
  }

  /** Resolves once the publisher is connected (or the connections are closed). */
  publisherReady(): Promise<void> {
    if (this.publisher.status === 'ready' || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.publisherWaiters.delete(wake);
        resolve();
      };
      this.publisherWaiters.add(wake);
    });
  }

  /** Publishes lines on one channel, in order (one round trip for a batch). */
  async transmit(channel: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 1) {
      await this.publisher.publish(channel, lines[0]!);
      return;
    }
    const pipeline = this.publisher.pipeline();
    for (const line of lines) pipeline.publish(channel, line);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of this.publisherWaiters) wake();
    await Promise.all([closeConnection(this.subscriber), closeConnection(this.publisher)]);
  }

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
        void this.subscribe();
      } else {
        for (const wake of this.publisherWaiters) wake();
        this.events.publisherReady();
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
      if (role === 'subscriber') this.subscription++;
      else this.events.publisherLost();
    });
    connection.on('reconnecting', (delay: number) => log.debug(`Reconnecting to redis in ${delay} ms`));
  }

  private async subscribe(): Promise<void> {
    const epoch = this.subscription;
    this.log.info(`Sending redis SUBSCRIBE for ${formatChannels(this.channels)}`);
    try {
      await this.subscriber.subscribe(...this.channels);
    } catch (err) {
      if (this.closed || epoch !== this.subscription) return;
      // A refused SUBSCRIBE on a live connection: start the connection over.
      this.log.error({ err }, 'Redis SUBSCRIBE failed; reconnecting');
      this.subscriber.disconnect(true);
      return;
    }
    if (this.closed || epoch !== this.subscription) return;
    this.events.subscribed(epoch);
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
