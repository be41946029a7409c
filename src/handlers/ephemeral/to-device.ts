// Send-to-device messaging (S:content/client-server-api/modules/send_to_device.md).
//
// Each message to each device takes its own to_device position and waits in the device's inbox
// until the device syncs past it. A (sender, device, txn id) is accepted once: a retransmission
// answers 200 and sends nothing (spec: client-server API §Transaction identifiers). Messages to
// other servers' users become one `m.direct_to_device` EDU per server (with its own `message_id`, spec: server-server API
// §Send-to-device messaging), kept in the federation outbox at a to_device position of its own,
// in the same transaction, until that server acknowledges it; the bus row names a recipient on
// that server so the federation sender wakes its queue.

import { randomBytes } from 'node:crypto';
import { isValidServerName, serverNameOf } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { directToDeviceEdu } from '../../core/outbound-edus.js';
import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import type { TransactionRunner } from '../../storage/database.js';
import type { FederationOutboxStore } from '../../storage/federation-outbox-store.js';
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
  /**
   * An `m.direct_to_device` EDU from `origin` (its sender checked to belong to it): delivered to our
   * recipients once per (origin, message_id) (spec: server-server API §Send-to-device messaging).
   */
  receiveRemote(origin: string, sender: string, eventType: string, messageId: string, messages: ToDeviceMessages): Promise<void>;
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
  /** Where messages for other servers' users wait until their server acknowledges them. */
  outbox: FederationOutboxStore;
}

/** Messages for one other server: recipient → device id (or `*`) → content. */
interface RemoteMessages {
  destination: string;
  messages: Record<string, Record<string, JsonObject>>;
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
      const remote = remoteMessages(messages, this.deps.serverName);
      // Chosen once, outside the transaction: a second run of it must write the same message.
      const remoteEdus = remote.map(({ destination, messages: byUser }) => {
        const messageId = randomBytes(12).toString('base64url');
        return { destination, messageId, eduJson: JSON.stringify(directToDeviceEdu(senderUserId, eventType, messageId, byUser).content) };
      });
      await this.publisher.write(deliveries.length + remoteEdus.length, async (positions) => {
        const sent = await transactions.transaction(async (tx) => {
          if (!(await store.claimTxn(tx, senderUserId, senderDeviceId, txnId, now()))) return false;
          for (const [i, d] of deliveries.entries()) await store.insert(tx, positions[i]!, d.userId, d.deviceId, d.json);
          for (const [i, edu] of remoteEdus.entries())
            await this.deps.outbox.insert(tx, { streamId: positions[deliveries.length + i]!, ...edu }, now());
          if (positions.length > 0) await store.recordPosition(tx, this.deps.instanceName, Math.max(...positions));
          return true;
        });
        const rows: StreamRow[] = sent ? deliveries.map((d) => ({ stream: 'to_device', userId: d.userId, deviceId: d.deviceId })) : [];
        // The federation sender learns of an outbox message from a row naming a recipient there.
        if (sent)
          for (const { messages: byUser } of remote)
            for (const userId of Object.keys(byUser)) rows.push({ stream: 'to_device', userId, deviceId: '*' });
        return { value: undefined, rows };
      });
    });
  }

  receiveRemote(origin: string, sender: string, eventType: string, messageId: string, messages: ToDeviceMessages): Promise<void> {
    const { store, transactions, now } = this.deps;
    // Deduplicated in the txn table under the origin's name (never a user id: those begin with
    // `@`) and an empty device id.
    return this.queue.run(`${origin}\u0000`, async () => {
      if (await store.txnSeen(origin, '', messageId)) return;
      const local = Object.fromEntries(Object.entries(messages).filter(([userId]) => isLocalUser(userId, this.deps.serverName)));
      const deliveries = await this.expand(sender, eventType, local);
      await this.publisher.write(deliveries.length, async (positions) => {
        const sent = await transactions.transaction(async (tx) => {
          if (!(await store.claimTxn(tx, origin, '', messageId, now()))) return false;
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
  private async expand(
    sender: string,
    eventType: string,
    messages: ToDeviceMessages,
  ): Promise<Array<{ userId: string; deviceId: string; json: string }>> {
    const deliveries: Array<{ userId: string; deviceId: string; json: string }> = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isLocalUser(userId, this.deps.serverName)) continue; // see remoteMessages
      const devices = (await this.deps.users.listDevices(userId)).map((d) => d.device_id);
      const wildcard = byDevice['*'];
      const targets: Array<[string, JsonObject]> =
        wildcard !== undefined ? devices.map((d) => [d, wildcard]) : Object.entries(byDevice).filter(([d]) => devices.includes(d));
      for (const [deviceId, content] of targets)
        deliveries.push({ userId, deviceId, json: JSON.stringify({ type: eventType, sender, content }) });
    }
    return deliveries;
  }
}

/**
 * The messages for other servers' users, grouped by server (in the order first named). The other
 * server expands `*` and drops unknown devices itself.
 */
function remoteMessages(messages: ToDeviceMessages, serverName: string): RemoteMessages[] {
  const byServer = new Map<string, Record<string, Record<string, JsonObject>>>();
  for (const [userId, byDevice] of Object.entries(messages)) {
    if (isLocalUser(userId, serverName)) continue;
    const destination = serverNameOf(userId);
    if (destination === undefined || !isValidServerName(destination) || Object.keys(byDevice).length === 0) continue;
    let forServer = byServer.get(destination);
    if (!forServer) byServer.set(destination, (forServer = {}));
    forServer[userId] = byDevice;
  }
  return [...byServer].map(([destination, byUser]) => ({ destination, messages: byUser }));
}

/** What /sync reads of the inbox, and the acknowledgement that empties it. */
export class ToDeviceReader {
  constructor(private readonly store: ToDeviceStore) {}

  async pending(
    userId: string,
    deviceId: string,
    from: number,
    to: number,
    limit: number,
  ): Promise<{ events: JsonObject[]; upTo: number }> {
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
