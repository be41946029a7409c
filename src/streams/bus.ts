// The replication bus: how every process learns that a stream advanced. Writers publish one
// update per completed position (Synapse's RDATA); readers subscribe. In a single process the bus
// is in memory (`InMemoryBus`, below); in worker mode `replication/redis-bus.ts` carries the same
// interface over Redis pub/sub. The streams own this contract: their writers, readers and caches
// speak only to it, never to a transport.

import type { StreamName } from './streams.js';

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

// Commands that carry no stream data (Synapse's replication commands of the same names; the
// line format is in `replication/commands.ts`).

/** `USER_SYNC <instance_id> <user_id> <device_id|None> <start|end> <last_sync_ms>` */
export interface UserSyncCommand {
  name: 'USER_SYNC';
  instanceId: string;
  userId: string;
  deviceId: string | null;
  isSyncing: boolean;
  lastSyncMs: number;
}

/** `CLEAR_USER_SYNC <instance_id>`: forget every syncing user the instance reported (shutdown). */
export interface ClearUserSyncCommand {
  name: 'CLEAR_USER_SYNC';
  instanceId: string;
}

/** `FEDERATION_ACK <instance> <token>` */
export interface FederationAckCommand {
  name: 'FEDERATION_ACK';
  instance: string;
  token: number;
}

/** `USER_IP <user_id> [access_token, ip, user_agent, device_id, last_seen]` */
export interface UserIpCommand {
  name: 'USER_IP';
  userId: string;
  accessToken: string;
  ip: string;
  userAgent: string;
  deviceId: string | null;
  lastSeen: number;
}

/** `REMOTE_SERVER_UP <server>`: a remote server answers again; reset its retry timings. */
export interface RemoteServerUpCommand {
  name: 'REMOTE_SERVER_UP';
  server: string;
}

/**
 * `INVALIDATE_TOKENS <json array of token hashes>`: access tokens were deleted (logout, device
 * deletion, password change, deactivation); every process drops them from its token cache. A
 * Myelin command: Synapse carries the same news as rows of its `caches` stream.
 */
export interface InvalidateTokensCommand {
  name: 'INVALIDATE_TOKENS';
  tokenHashes: string[];
}

/** Commands that carry no stream data: the bus only delivers them (`send` / `onCommand`). */
export type BusCommand =
  UserSyncCommand | ClearUserSyncCommand | FederationAckCommand | UserIpCommand | RemoteServerUpCommand | InvalidateTokensCommand;

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
