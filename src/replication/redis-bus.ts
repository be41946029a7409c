// The replication bus of worker mode: Redis pub/sub, Synapse's line commands.
//
// Every process keeps two connections to Redis (`redis-connection.ts`): a subscriber on the
// channels `<server_name>` (and `<server_name>/USER_IP` on main and the background worker), and a
// publisher. A writer's update is delivered to this process's subscribers at once and goes out as
// RDATA lines with POSITIONs around them (`announcer.ts`); other processes follow it, noticing
// and fetching what pub/sub lost (`follower.ts`). Readers ask for POSITIONs with REPLICATE after
// every (re)subscription. This class puts the three together behind the bus contract.

import { InMemoryBus, type BusCommand, type ReplicationBus, type StreamUpdate } from '../streams/bus.js';
import type { StreamName } from '../streams/streams.js';
import { componentLogger, type Logger } from '../util/log.js';
import { StreamAnnouncer } from './announcer.js';
import type { StartingPosition, StreamCatchUp } from './catch-up.js';
import { decodeCommand, encodeCommand, type ReplicationCommand } from './commands.js';
import { StreamFollower } from './follower.js';
import { reconnectDelay, RedisConnection, type RedisConnectionConfig } from './redis-connection.js';

export interface RedisBusOptions {
  serverName: string;
  instanceName: string;
  redis: RedisConnectionConfig;
  log: Logger;
  /** Also subscribe to `<server_name>/USER_IP` (main and the background worker). */
  userIpChannel: boolean;
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
const MAX_LOGGED_LINE = 200;

export class RedisBus implements ReplicationBus {
  private readonly local = new InMemoryBus();
  private readonly log: Logger;
  private readonly serverName: string;
  private readonly instanceName: string;
  private readonly initialPositions: readonly StartingPosition[];
  private readonly positionIntervalMs: number;
  private readonly connection: RedisConnection;
  private readonly announcer: StreamAnnouncer;
  /** Exists once started: it reads what it missed through the catch-up given to `start`. */
  private follower: StreamFollower | undefined;
  private catchUp: StreamCatchUp | undefined;
  private announceScheduled = false;
  private positionTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly replicating: Promise<void>;
  private markReplicating!: () => void;

  constructor(options: RedisBusOptions) {
    this.log = componentLogger(options.log, 'replication.redis');
    this.serverName = options.serverName;
    this.instanceName = options.instanceName;
    this.initialPositions = options.initialPositions ?? [];
    this.positionIntervalMs = options.positionIntervalMs ?? DEFAULT_POSITION_INTERVAL_MS;
    this.replicating = new Promise((resolve) => (this.markReplicating = resolve));
    this.connection = new RedisConnection({
      redis: options.redis,
      instanceName: this.instanceName,
      channels: options.userIpChannel ? [`${this.serverName}/USER_IP`, this.serverName] : [this.serverName],
      log: this.log,
      events: {
        message: (line) => this.onMessage(line),
        subscribed: (epoch) => void this.replicate(epoch),
        // Readers may have missed our RDATA while the publisher was away (even if their own
        // connections never dropped): our positions tell them.
        publisherReady: () => this.scheduleAnnounce(),
        publisherLost: () => this.announcer.publisherLost(),
      },
    });
    this.announcer = new StreamAnnouncer({
      instanceName: this.instanceName,
      channel: this.serverName,
      connection: this.connection,
      log: this.log,
    });
  }

  /**
   * Connects (and keeps reconnecting forever), announcing the streams `catchUp` says this process
   * writes and fetching through it what pub/sub lost. Resolves once the first subscription is made
   * and REPLICATE sent; callers that must not wait for Redis need not await it.
   */
  start(catchUp: StreamCatchUp): Promise<void> {
    if (!this.catchUp && !this.closed) {
      this.catchUp = catchUp;
      this.follower = new StreamFollower({
        instanceName: this.instanceName,
        catchUp,
        initialPositions: this.initialPositions,
        deliver: (update) => this.local.publish(update),
        log: this.log,
      });
      this.connection.start();
      this.positionTimer = setInterval(() => this.announcePositions(), this.positionIntervalMs);
      this.positionTimer.unref();
    }
    return this.replicating;
  }

  /** Both connections are up. */
  get connected(): boolean {
    return this.connection.connected;
  }

  /**
   * How far this process has received another instance's stream (undefined: not heard of it yet).
   * Every row at or below it has been delivered to the subscribers.
   */
  positionOf(stream: StreamName, instance: string): number | undefined {
    return this.follower?.positionOf(stream, instance);
  }

  publish(update: StreamUpdate): void {
    try {
      this.local.publish(update);
    } finally {
      if (!this.closed) this.announcer.forward(update);
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
    if (!this.connection.canTransmit()) {
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
    this.connection.transmit(channel, [line]).catch((err: unknown) => {
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
    this.follower?.close();
    await this.connection.close();
  }

  /**
   * After each (re)subscription: REPLICATE asks every writer for its positions. Only now: a
   * REPLICATE sent before the subscription holds would miss the POSITIONs it asks for.
   */
  private async replicate(epoch: number): Promise<void> {
    this.log.info('Successfully subscribed to redis stream, sending REPLICATE command');
    const superseded = () => this.closed || epoch !== this.connection.epoch;
    for (let attempt = 1; ; attempt++) {
      await this.connection.publisherReady();
      if (superseded()) return;
      try {
        await this.connection.transmit(this.serverName, [encodeCommand({ name: 'REPLICATE' })]);
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
    if (!this.catchUp || !this.connection.canTransmit()) return;
    let written: Array<{ stream: StreamName; position: number }>;
    try {
      written = this.catchUp.writtenStreams();
    } catch (err) {
      this.log.error({ err }, 'Cannot read the positions of the streams this process writes');
      return;
    }
    this.announcer.announce(written);
  }

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
        this.follower?.receive(command, this.connection.epoch);
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
}
