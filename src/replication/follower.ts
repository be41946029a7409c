// The reader side of the Redis bus: follows every other writer's streams from their RDATA and
// POSITION lines, and delivers each completed update to this process in position order.
//
// A reader trusts a writer's RDATA only after a POSITION from that writer has arrived on its
// current subscription: POSITION says "complete up to new_token, nothing written after
// prev_token", so a reader that has seen less than prev_token knows it missed rows and fetches them
// through `StreamCatchUp` before anything later from that writer. Rows of one update arrive as
// several lines; they are gathered per (stream, writer) and delivered as one update when the line
// with the position arrives.

import type { StreamRow, StreamUpdate } from '../streams/bus.js';
import { STREAM_NAMES, type StreamName } from '../streams/streams.js';
import type { Logger } from '../util/log.js';
import type { StartingPosition, StreamCatchUp } from './catch-up.js';
import type { PositionCommand, RdataCommand } from './commands.js';
import { reconnectDelay } from './redis-connection.js';

const STREAMS: ReadonlySet<string> = new Set(STREAM_NAMES);

function isStreamName(name: string): name is StreamName {
  return STREAMS.has(name);
}

function isRowOf(stream: StreamName, row: unknown): row is StreamRow {
  return typeof row === 'object' && row !== null && !Array.isArray(row) && (row as { stream?: unknown }).stream === stream;
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

export interface StreamFollowerOptions {
  /** This process: its own lines are delivered when published, not when they come back. */
  instanceName: string;
  catchUp: StreamCatchUp;
  /**
   * The positions this process's state was loaded at, per writer. A writer listed here is caught
   * up from that position on its first POSITION; a writer not listed starts at its first
   * POSITION, without catching up.
   */
  initialPositions: readonly StartingPosition[];
  /** Hands a completed update to this process's subscribers. */
  deliver(update: StreamUpdate): void;
  log: Logger;
}

export class StreamFollower {
  private readonly remotes = new Map<string, RemoteStream>();
  private readonly instanceName: string;
  private readonly catchUp: StreamCatchUp;
  private readonly deliverUpdate: (update: StreamUpdate) => void;
  private readonly log: Logger;
  private closed = false;

  constructor(options: StreamFollowerOptions) {
    this.instanceName = options.instanceName;
    this.catchUp = options.catchUp;
    this.deliverUpdate = options.deliver;
    this.log = options.log;
    for (const start of options.initialPositions) this.remoteFor(start.stream, start.instance).position = start.position;
  }

  /**
   * How far this process has received another instance's stream (undefined: not heard of it yet).
   * Every row at or below it has been delivered to the subscribers.
   */
  positionOf(stream: StreamName, instance: string): number | undefined {
    return this.remotes.get(remoteKey(stream, instance))?.position;
  }

  /** An RDATA or POSITION line received on subscription `epoch`. */
  receive(command: RdataCommand | PositionCommand, epoch: number): void {
    if (this.closed) return;
    if (command.instance === this.instanceName) return; // our own, delivered when published
    if (!isStreamName(command.stream)) {
      this.log.debug({ stream: command.stream, writer: command.instance }, `Ignoring ${command.name} for an unknown stream`);
      return;
    }
    const remote = this.remoteFor(command.stream, command.instance);
    remote.queue.push({ command, epoch });
    this.drain(remote);
  }

  close(): void {
    this.closed = true;
    for (const remote of this.remotes.values()) clearTimeout(remote.retry);
  }

  private remoteFor(stream: StreamName, instance: string): RemoteStream {
    const key = remoteKey(stream, instance);
    let remote = this.remotes.get(key);
    if (!remote) {
      remote = {
        stream,
        instance,
        position: undefined,
        trustedEpoch: -1,
        batch: [],
        queue: [],
        catchingUp: false,
        retry: undefined,
        failures: 0,
      };
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
    this.catchUp
      .rowsBetween(stream, instance, seen, newToken)
      .then(
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
          this.log.warn(
            { err, stream, writer: instance },
            `Failed to fetch replication rows between ${seen} and ${newToken}; retrying in ${delay} ms`,
          );
          // A newer POSITION from the writer replaces this retry (see above).
          remote.retry = setTimeout(() => {
            remote.retry = undefined;
            remote.queue.unshift({ command, epoch });
            this.drain(remote);
          }, delay);
          remote.retry.unref();
        },
      )
      .finally(() => {
        remote.catchingUp = false;
        this.drain(remote);
      });
  }

  private deliver(update: StreamUpdate): void {
    try {
      this.deliverUpdate(update);
    } catch (err) {
      this.log.error({ err, stream: update.stream, writer: update.instance }, 'A replication subscriber failed');
    }
  }
}
