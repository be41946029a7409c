// The writer side of the Redis bus: this process's stream updates go out as RDATA lines (every row
// but the last tagged `batch`), and its positions as POSITION lines, which is what lets readers
// notice rows they missed.
//
// Pub/sub drops whatever is published while a connection is down, so RDATA alone cannot be trusted:
// POSITION `<stream> <us> <prev> <new>` says "complete up to new, nothing written after prev", and a
// reader that has seen less than prev fetches the rest. POSITIONs go out every few seconds, on
// REPLICATE, after reconnecting, and before the next RDATA of a stream whose lines may have been
// lost, so a gap never goes unnoticed.

import type { StreamUpdate } from '../streams/bus.js';
import type { StreamName } from '../streams/streams.js';
import type { Logger } from '../util/log.js';
import { encodeCommand } from './commands.js';
import type { RedisConnection } from './redis-connection.js';

export interface StreamAnnouncerOptions {
  instanceName: string;
  /** The channel updates are published on (`<server_name>`). */
  channel: string;
  connection: RedisConnection;
  log: Logger;
}

export class StreamAnnouncer {
  private readonly instanceName: string;
  private readonly channel: string;
  private readonly connection: RedisConnection;
  private readonly log: Logger;
  /** The last position of each of our streams that we sent (or tried to send) to Redis. */
  private readonly sent = new Map<StreamName, number>();
  /** Our streams whose RDATA may have been lost: a POSITION goes out before their next RDATA. */
  private readonly unannounced = new Set<StreamName>();
  private droppingSince: number | undefined;

  constructor(options: StreamAnnouncerOptions) {
    this.instanceName = options.instanceName;
    this.channel = options.channel;
    this.connection = options.connection;
    this.log = options.log;
  }

  /**
   * Sends our update as RDATA. While Redis is unreachable the lines are dropped rather than
   * queued: readers fetch what they missed once they see our next POSITION, so a queue would only
   * cost memory and send stale rows late. The stream is marked so that a POSITION precedes its
   * next RDATA; without it a reader could take that RDATA as following on from what it has.
   */
  forward(update: StreamUpdate): void {
    const { stream, position } = update;
    const previous = this.sent.get(stream);
    if (!this.connection.canTransmit()) {
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
    this.connection.transmit(this.channel, lines).catch((err: unknown) => {
      this.unannounced.add(stream);
      this.log.warn({ err, stream, position }, 'Publishing RDATA to redis failed; readers catch up from the next POSITION');
    });
  }

  /** `POSITION <stream> <us> <last sent> <current>` for each of our streams. */
  announce(written: ReadonlyArray<{ stream: StreamName; position: number }>): void {
    if (written.length === 0 || !this.connection.canTransmit()) return;
    const lines: string[] = [];
    for (const { stream, position } of written) {
      const previous = this.sent.get(stream);
      const next = Math.max(position, previous ?? position);
      lines.push(encodeCommand({ name: 'POSITION', stream, instance: this.instanceName, prevToken: previous ?? next, newToken: next }));
      this.sent.set(stream, next);
      this.unannounced.delete(stream);
    }
    this.connection.transmit(this.channel, lines).catch((err: unknown) => {
      for (const { stream } of written) this.unannounced.add(stream);
      this.log.warn({ err }, 'Sending POSITION to redis failed');
    });
  }

  /** The publisher lost its connection: whatever we sent lately may be lost with it. */
  publisherLost(): void {
    for (const stream of this.sent.keys()) this.unannounced.add(stream);
  }
}
