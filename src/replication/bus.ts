// The replication bus: how every process learns that a stream advanced. Writers publish one
// update per completed position (Synapse's RDATA); readers subscribe. In a single process the bus
// is in memory; in worker mode the same interface is carried over Redis pub/sub.

import type { StreamName } from '../streams/streams.js';
import type { BusCommand } from './commands.js';

/** What changed at a stream position, enough for readers to know whom to wake and what to drop
 * from caches. */
export type StreamRow =
  | {
      stream: 'events';
      roomId: string;
      eventId: string;
      type: string;
      stateKey?: string;
      sender: string;
      membership?: string;
      redacts?: string;
      /**
       * Set when the room's current state did not change by exactly this event's own key (state
       * resolution across forked branches): the keys that changed, with their new event (null:
       * removed). Readers drop what they cached of the room's state and of these members.
       */
      stateDelta?: Array<{ type: string; stateKey: string; eventId: string | null }>;
    }
  | { stream: 'typing'; roomId: string; userIds: string[] }
  | { stream: 'receipts'; roomId: string; userId: string }
  | { stream: 'account_data'; userId: string; roomId?: string; type: string }
  | { stream: 'to_device'; userId: string; deviceId: string }
  | { stream: 'presence'; userId: string; roomIds: string[] }
  | { stream: 'push_rules'; userId: string }
  | { stream: 'device_lists'; userId: string; roomIds: string[] };

export interface StreamUpdate {
  stream: StreamName;
  /** The writer instance that advanced the stream. */
  instance: string;
  /** The stream's new completed position. */
  position: number;
  rows: readonly StreamRow[];
}

export interface ReplicationBus {
  publish(update: StreamUpdate): void;
  subscribe(listener: (update: StreamUpdate) => void): () => void;
  /**
   * Sends a command that carries no stream data (USER_SYNC, USER_IP, ...) to every process that
   * listens for it, this one included. Like Synapse, these are fire-and-forget: a command sent
   * while the transport is down is dropped.
   */
  send(command: BusCommand): void;
  onCommand(listener: (command: BusCommand) => void): () => void;
  /** Stops the transport (process shutdown). */
  close(): Promise<void>;
}

/** Single-process bus: delivers to every subscriber synchronously, in publish order. */
export class InMemoryBus implements ReplicationBus {
  private readonly listeners = new Set<(update: StreamUpdate) => void>();
  private readonly commandListeners = new Set<(command: BusCommand) => void>();

  publish(update: StreamUpdate): void {
    for (const listener of this.listeners) listener(update);
  }

  subscribe(listener: (update: StreamUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  send(command: BusCommand): void {
    for (const listener of this.commandListeners) listener(command);
  }

  onCommand(listener: (command: BusCommand) => void): () => void {
    this.commandListeners.add(listener);
    return () => this.commandListeners.delete(listener);
  }

  async close(): Promise<void> {}
}
