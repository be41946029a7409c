// Send-to-device messaging (S:content/client-server-api/modules/send_to_device.md).
//
// Each message to each device takes its own to_device position and waits in the device's inbox
// until the device syncs past it. A (sender, device, txn id) is accepted once: a retransmission
// answers 200 and sends nothing (spec: client-server API §Transaction identifiers). Messages to other servers' users need
// federation, which comes later; they are dropped with a log line.

import type { JsonObject } from '../../core/json.js';
import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { ToDeviceStore } from '../../storage/to-device-store.js';
import type { UsersStore } from '../../storage/users-store.js';
import { StreamIdGenerator } from '../../streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { Logger } from '../../util/log.js';
import { isLocalUser } from './checks.js';

/** `messages` of the request: user id → device id (or `*`) → content. */
export type ToDeviceMessages = Record<string, Record<string, JsonObject>>;

/** The to-device writer, as the API reaches it (in worker mode over RPC). */
export interface ToDeviceWriterApi {
  send(senderUserId: string, senderDeviceId: string, eventType: string, txnId: string, messages: ToDeviceMessages): Promise<void>;
}

export interface ToDeviceWriterDeps {
  transactions: TransactionRunner;
  store: ToDeviceStore;
  users: UsersStore;
  bus: ReplicationBus;
  instanceName: string;
  serverName: string;
  now: () => number;
  log: Logger;
}

export class ToDeviceWriter implements ToDeviceWriterApi {
  private readonly queue = new KeyedQueue();

  private constructor(
    private readonly deps: ToDeviceWriterDeps,
    private readonly publisher: StreamPublisher,
  ) {}

  static async create(deps: ToDeviceWriterDeps): Promise<ToDeviceWriter> {
    const ids = new StreamIdGenerator(await deps.store.maxStreamId(deps.instanceName));
    return new ToDeviceWriter(deps, new StreamPublisher('to_device', ids, deps.bus, deps.instanceName));
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  send(senderUserId: string, senderDeviceId: string, eventType: string, txnId: string, messages: ToDeviceMessages): Promise<void> {
    const { store, transactions, now } = this.deps;
    // One send per sender device at a time, so a retransmission racing the original sees its txn.
    return this.queue.run(`${senderUserId}\u0000${senderDeviceId}`, async () => {
      if (await store.txnSeen(senderUserId, senderDeviceId, txnId)) return;
      const deliveries = await this.expand(senderUserId, eventType, messages);
      await this.publisher.write(deliveries.length, async (positions) => {
        const sent = await transactions.transaction(async (tx) => {
          if (!(await store.claimTxn(tx, senderUserId, senderDeviceId, txnId, now()))) return false;
          for (const [i, d] of deliveries.entries()) await store.insert(tx, positions[i]!, d.userId, d.deviceId, d.json);
          if (positions.length > 0) await store.recordPosition(tx, this.deps.instanceName, Math.max(...positions));
          return true;
        });
        const rows: StreamRow[] = sent ? deliveries.map((d) => ({ stream: 'to_device', userId: d.userId, deviceId: d.deviceId })) : [];
        return { value: undefined, rows };
      });
    });
  }

  /**
   * One delivery per existing target device. `*` means every device of the user, and then wins
   * over messages to named devices (as in Synapse); unknown devices get nothing.
   */
  private async expand(sender: string, eventType: string, messages: ToDeviceMessages): Promise<Array<{ userId: string; deviceId: string; json: string }>> {
    const deliveries: Array<{ userId: string; deviceId: string; json: string }> = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isLocalUser(userId, this.deps.serverName)) {
        this.deps.log.info({ sender, userId, eventType }, 'to-device message for a remote user dropped: federation is not available yet');
        continue;
      }
      const devices = (await this.deps.users.listDevices(userId)).map((d) => d.device_id);
      const wildcard = byDevice['*'];
      const targets: Array<[string, JsonObject]> =
        wildcard !== undefined ? devices.map((d) => [d, wildcard]) : Object.entries(byDevice).filter(([d]) => devices.includes(d));
      for (const [deviceId, content] of targets) deliveries.push({ userId, deviceId, json: JSON.stringify({ type: eventType, sender, content }) });
    }
    return deliveries;
  }
}

/** What /sync reads of the inbox, and the acknowledgement that empties it. */
export class ToDeviceReader {
  constructor(private readonly store: ToDeviceStore) {}

  async pending(userId: string, deviceId: string, from: number, to: number, limit: number): Promise<{ events: JsonObject[]; upTo: number }> {
    if (limit <= 0) return { events: [], upTo: from };
    const rows = await this.store.pending(userId, deviceId, from, to, limit);
    const events = rows.map((r) => JSON.parse(r.message_json) as JsonObject);
    // A full page may have more behind it: the client's position stops at the last one it got.
    const upTo = rows.length === limit ? Number(rows[rows.length - 1]!.stream_id) : to;
    return { events, upTo };
  }

  acknowledge(userId: string, deviceId: string, position: number): Promise<void> {
    return this.store.deleteUpTo(userId, deviceId, position);
  }
}
