// The durable EDUs of a destination, read from their streams past the destination's acknowledged
// position: read receipts (`m.receipt`), device-list changes (`m.device_list_update`) and
// cross-signing key changes (`m.signing_key_update`). A restarted sender, or one whose destination
// was down, finds them again in the tables; the position only moves once the destination has
// acknowledged the transaction that carried them.

import { serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import {
  deviceListUpdateEdu,
  receiptEdus,
  signingKeyUpdateEdu,
  withExtraSignatures,
  type OutboundEdu,
  type OutboundReceipt,
} from '../../core/outbound-edus.js';
import type { DeviceChangeRow, FederationSenderReads } from '../../storage/federation-sender-reads.js';

/** Whether the destination shares a room with a user / is in a room now. */
export interface SharedRooms {
  /** The servers in the room now (ourselves left out). */
  hostsOf(roomId: string): Promise<ReadonlySet<string>>;
  /** The rooms the user is joined to now. */
  roomsOf(userId: string): Promise<readonly string[]>;
}

export interface DurableEdus {
  readonly edus: OutboundEdu[];
  /** The stream position the destination is at once these are acknowledged. */
  readonly upTo: number;
  /** More rows are waiting after `upTo`. */
  readonly more: boolean;
}

function parseObject(text: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

async function sharesRoomWith(destination: string, userId: string, shared: SharedRooms): Promise<boolean> {
  for (const roomId of await shared.roomsOf(userId)) if ((await shared.hostsOf(roomId)).has(destination)) return true;
  return false;
}

/**
 * Our users' public read receipts in rooms the destination is in, changed with
 * `from < stream_id <= to` (the latest receipt of each user and thread: older ones were replaced),
 * in at most `budget` EDUs.
 */
export async function receiptEdusFor(
  destination: string,
  ourServerName: string,
  from: number,
  to: number,
  budget: number,
  reads: Pick<FederationSenderReads, 'localReadReceipts'>,
  shared: SharedRooms,
): Promise<DurableEdus> {
  if (from >= to || budget <= 0) return { edus: [], upTo: Math.max(from, to), more: from < to };
  for (let maxRows = 200; ; maxRows = Math.max(1, Math.floor(maxRows / 2))) {
    const rows = await reads.localReadReceipts(from, to, maxRows);
    const more = rows.length === maxRows;
    const upTo = more ? rows[rows.length - 1]!.stream_id : to;
    const receipts: OutboundReceipt[] = [];
    for (const row of rows) {
      if (serverNameOf(row.user_id) !== ourServerName) continue;
      if (!(await shared.hostsOf(row.room_id)).has(destination)) continue;
      const data = parseObject(row.data) ?? {};
      receipts.push({
        roomId: row.room_id,
        userId: row.user_id,
        eventId: row.event_id,
        ts: typeof data.ts === 'number' ? data.ts : undefined,
        threadId: row.thread_id === '' ? undefined : row.thread_id,
      });
    }
    const edus = receiptEdus(receipts);
    // Each EDU holds one receipt per user and room: only a user's many threads need several.
    if (edus.length <= budget || maxRows === 1) return { edus: edus.slice(0, budget), upTo, more };
  }
}

type DeviceReads = Pick<
  FederationSenderReads,
  'localDeviceChanges' | 'previousDeviceChange' | 'deviceKeys' | 'existingDevices' | 'crossSigningKeys' | 'selfSignatures'
>;

export interface DeviceListEdus extends DurableEdus {
  /**
   * EDUs of the position after `upTo` already included (that position's changes did not fit in one
   * transaction: it is sent in parts, and counts as sent once its last part is acknowledged).
   */
  readonly partOfNext: number;
}

/**
 * Our users' device-list changes with `from < stream_id <= to`, for the destination if it shares
 * a room with the user now, at most `budget` EDUs, whole stream positions where possible
 * (`skip`: EDUs of the first position sent already, see `partOfNext`).
 *
 * A change of a device becomes an `m.device_list_update` with its current keys (or `deleted`),
 * `stream_id` the change's position and `prev_id` the user's change before it: the receiver that
 * saw that one applies this one, any other fetches the whole list (spec: server-server API §Device
 * Management). A change of the user's master or self-signing key (recorded under the key's public
 * key, which shares the device id namespace) becomes one `m.signing_key_update` with the current
 * keys. As in Synapse, a row naming a cross-signing key that has since been replaced reads as a
 * device that no longer exists.
 */
export async function deviceListEdusFor(
  destination: string,
  ourServerName: string,
  from: number,
  to: number,
  budget: number,
  skip: number,
  reads: DeviceReads,
  shared: SharedRooms,
): Promise<DeviceListEdus> {
  if (from >= to || budget <= 0) return { edus: [], upTo: Math.max(from, to), more: from < to, partOfNext: skip };
  const limit = Math.max(budget * 2, 50);
  let rows = (await reads.localDeviceChanges(from, to, limit)).filter((r) => serverNameOf(r.user_id) === ourServerName);
  let more = rows.length === limit;
  let upTo = to;
  if (more) {
    // Stop before the last position: its rows may go on past the limit.
    const last = rows[rows.length - 1]!.stream_id;
    const whole = rows.filter((r) => r.stream_id < last);
    if (whole.length > 0) {
      rows = whole;
      upTo = whole[whole.length - 1]!.stream_id;
    } else {
      rows = (await reads.localDeviceChanges(last - 1, last, 1_000_000)).filter((r) => serverNameOf(r.user_id) === ourServerName);
      upTo = last;
    }
  }

  const positions: Array<{ streamId: number; rows: DeviceChangeRow[] }> = [];
  for (const row of rows) {
    const group = positions[positions.length - 1];
    if (group && group.streamId === row.stream_id) group.rows.push(row);
    else positions.push({ streamId: row.stream_id, rows: [row] });
  }

  const sharing = new Map<string, boolean>();
  const shares = async (userId: string) => {
    let yes = sharing.get(userId);
    if (yes === undefined) sharing.set(userId, (yes = await sharesRoomWith(destination, userId, shared)));
    return yes;
  };
  const crossSigning = new Map<string, { master?: JsonObject; selfSigning?: JsonObject; publicKeys: string[] }>();
  const keysOfUser = async (userId: string) => {
    let keys = crossSigning.get(userId);
    if (!keys) {
      const keyRows = await reads.crossSigningKeys(userId);
      const signatures = await reads.selfSignatures(userId);
      keys = { publicKeys: keyRows.map((r) => r.public_key) };
      for (const row of keyRows) {
        const json = parseObject(row.key_json);
        if (!json) continue;
        const signed = withExtraSignatures(
          json,
          signatures
            .filter((s) => s.target_device_id === row.public_key)
            .map((s) => ({ signer: s.user_id, keyId: s.key_id, signature: s.signature })),
        );
        if (row.key_type === 'master') keys.master = signed;
        else if (row.key_type === 'self_signing') keys.selfSigning = signed;
      }
      crossSigning.set(userId, keys);
    }
    return keys;
  };
  const previous = new Map<string, number | undefined>();
  const signingKeysSent = new Set<string>();

  /** The EDUs of one position, in a stable order (rows come sorted by user and device). */
  const edusOf = async (group: { streamId: number; rows: DeviceChangeRow[] }): Promise<OutboundEdu[]> => {
    const out: OutboundEdu[] = [];
    const byUser = new Map<string, string[]>();
    for (const row of group.rows) {
      let list = byUser.get(row.user_id);
      if (!list) byUser.set(row.user_id, (list = []));
      if (!list.includes(row.device_id)) list.push(row.device_id);
    }
    for (const [userId, deviceIds] of byUser) {
      if (!(await shares(userId))) continue;
      const keys = await keysOfUser(userId);
      const devices = deviceIds.filter((id) => !keys.publicKeys.includes(id));
      if (devices.length > 0) {
        if (!previous.has(userId)) previous.set(userId, await reads.previousDeviceChange(userId, group.streamId, keys.publicKeys));
        const prevId = previous.get(userId);
        const [keyRows, existing, signatures] = await Promise.all([
          reads.deviceKeys(userId, devices),
          reads.existingDevices(userId, devices),
          reads.selfSignatures(userId),
        ]);
        const keysByDevice = new Map(keyRows.map((r) => [r.device_id, r.key_json]));
        for (const deviceId of devices) {
          const keyJson = keysByDevice.get(deviceId);
          const parsed = keyJson === undefined ? undefined : parseObject(keyJson);
          const deviceSignatures = signatures
            .filter((s) => s.target_device_id === deviceId)
            .map((s) => ({ signer: s.user_id, keyId: s.key_id, signature: s.signature }));
          out.push(
            deviceListUpdateEdu({
              userId,
              deviceId,
              streamId: group.streamId,
              prevId,
              keys: parsed === undefined ? undefined : withExtraSignatures(parsed, deviceSignatures),
              deleted: !existing.has(deviceId),
            }),
          );
        }
        previous.set(userId, group.streamId);
      }
      if (devices.length < deviceIds.length && !signingKeysSent.has(userId) && (keys.master || keys.selfSigning)) {
        signingKeysSent.add(userId);
        out.push(signingKeyUpdateEdu(userId, keys.master, keys.selfSigning));
      }
    }
    return out;
  };

  const edus: OutboundEdu[] = [];
  for (const [index, group] of positions.entries()) {
    let groupEdus = await edusOf(group);
    if (index === 0 && skip > 0) groupEdus = groupEdus.slice(skip);
    if (edus.length + groupEdus.length <= budget) {
      edus.push(...groupEdus);
      continue;
    }
    if (index === 0) {
      // One position with more changes than a transaction takes: sent in parts.
      return { edus: groupEdus.slice(0, budget), upTo: from, more: true, partOfNext: skip + budget };
    }
    upTo = positions[index - 1]!.streamId;
    more = true;
    break;
  }
  return { edus, upTo, more, partOfNext: 0 };
}
