// Inbound transactions: the body of `PUT /_matrix/federation/v1/send/{txnId}` (spec:
// server-server API §Transactions; `transactions.yaml`, `definitions/transaction.yaml`), and how
// its PDUs are handed to the rooms they belong to.
//
// The transaction as a whole is refused only when its envelope is wrong (not an object, `pdus`
// or `edus` not arrays, more than 50 PDUs or 100 EDUs). Everything about single PDUs and EDUs is
// answered per PDU or ignored, never by failing the transaction: "If an event in an incoming
// transaction is rejected, this should not cause the transaction request to be responded to with
// an error response" (§Rejection).

import type { RoomEvent } from './events.js';
import type { JsonObject } from './json.js';
import { isJsonObject } from './json.js';

/** "Transactions are limited in size; they can have at most 50 PDUs and 100 EDUs." */
export const MAX_PDUS_PER_TRANSACTION = 50;
export const MAX_EDUS_PER_TRANSACTION = 100;

export interface InboundTransaction {
  readonly txnId: string;
  /**
   * The origin authenticated by the request signature. The body's own `origin` is not trusted:
   * Synapse ignores it too, and a mismatch is only reported (`bodyOriginMismatch`).
   */
  readonly origin: string;
  /** The body's `origin_server_ts`, when it is an integer. */
  readonly originServerTs: number | undefined;
  /** The PDUs as received, not yet checked (see `groupPdusByRoom`). */
  readonly pdus: readonly unknown[];
  /** The EDUs as received, not yet checked (see `parseEdu` in edus.ts). */
  readonly edus: readonly unknown[];
  /** The body named another origin than the one that signed the request (worth a log line). */
  readonly bodyOriginMismatch: boolean;
}

export interface TransactionError {
  /**
   * 400, as Synapse answers a transaction over the limits. The spec names no status; the body
   * breaks the schema, so `M_BAD_JSON`. The sender must not retry the same transaction.
   */
  readonly status: 400;
  readonly errcode: 'M_BAD_JSON' | 'M_NOT_JSON' | 'M_INVALID_PARAM';
  readonly message: string;
}

export type TransactionResult =
  { readonly ok: true; readonly transaction: InboundTransaction } | { readonly ok: false; readonly error: TransactionError };

function invalid(errcode: TransactionError['errcode'], message: string): { ok: false; error: TransactionError } {
  return { ok: false, error: { status: 400, errcode, message } };
}

/**
 * Checks the envelope of a `/send/{txnId}` body from `authenticatedOrigin`. `pdus` is required by
 * the spec, but a missing one is read as `[]` as Synapse does (an EDU-only transaction); `edus`
 * may be absent. Wrong types and too many items are refused.
 */
export function validateTransaction(txnId: string, body: unknown, authenticatedOrigin: string): TransactionResult {
  if (typeof txnId !== 'string' || txnId === '') return invalid('M_INVALID_PARAM', 'the transaction id is empty');
  if (!isJsonObject(body)) return invalid('M_NOT_JSON', 'a transaction must be a JSON object');
  const pdus = body.pdus === undefined ? [] : body.pdus;
  const edus = body.edus === undefined ? [] : body.edus;
  if (!Array.isArray(pdus)) return invalid('M_BAD_JSON', '"pdus" must be an array');
  if (!Array.isArray(edus)) return invalid('M_BAD_JSON', '"edus" must be an array');
  if (pdus.length > MAX_PDUS_PER_TRANSACTION) {
    return invalid('M_BAD_JSON', `a transaction may hold at most ${MAX_PDUS_PER_TRANSACTION} PDUs, not ${pdus.length}`);
  }
  if (edus.length > MAX_EDUS_PER_TRANSACTION) {
    return invalid('M_BAD_JSON', `a transaction may hold at most ${MAX_EDUS_PER_TRANSACTION} EDUs, not ${edus.length}`);
  }
  const ts = body.origin_server_ts;
  return {
    ok: true,
    transaction: {
      txnId,
      origin: authenticatedOrigin,
      originServerTs: typeof ts === 'number' && Number.isSafeInteger(ts) ? ts : undefined,
      pdus,
      edus,
      bodyOriginMismatch: body.origin !== undefined && body.origin !== authenticatedOrigin,
    },
  };
}

// ---- PDUs by room ----

export interface RoomPdus {
  readonly roomId: string;
  /** This room's PDUs in transaction order. */
  readonly pdus: readonly JsonObject[];
}

export interface GroupedPdus {
  /** One entry per room, in the order the rooms first appear. */
  readonly rooms: readonly RoomPdus[];
  /**
   * PDUs that belong to no room we can name, with their position in the transaction. They get
   * no entry in the response (as in Synapse), since without a room there is no room version to
   * compute their event id with. This includes room version 12 create events, which have no
   * `room_id` (MSC4291): such an event only ever reaches a server through a join, an invite or
   * an auth chain, never through `/send` of a room the server is already in.
   */
  readonly unplaced: readonly { readonly index: number; readonly reason: string }[];
}

/**
 * Groups a transaction's PDUs by `room_id`, keeping transaction order within each room, so the
 * caller can look each room's version up once and hand the room's PDUs to the room's writer.
 * The spec's event format check (step 1) needs the room version, which the `room_id` names
 * (§Checks performed on receipt: "a `room_id` may also be required on the event in order to
 * determine the room version").
 */
export function groupPdusByRoom(pdus: readonly unknown[]): GroupedPdus {
  const byRoom = new Map<string, JsonObject[]>();
  const unplaced: { index: number; reason: string }[] = [];
  pdus.forEach((pdu, index) => {
    if (!isJsonObject(pdu)) {
      unplaced.push({ index, reason: 'not a JSON object' });
      return;
    }
    const roomId = pdu.room_id;
    if (typeof roomId !== 'string' || !roomId.startsWith('!')) {
      unplaced.push({
        index,
        reason: pdu.type === 'm.room.create' && !('room_id' in pdu) ? 'a create event without room_id' : 'no valid room_id',
      });
      return;
    }
    const list = byRoom.get(roomId);
    if (list) list.push(pdu);
    else byRoom.set(roomId, [pdu]);
  });
  return { rooms: [...byRoom].map(([roomId, list]) => ({ roomId, pdus: list })), unplaced };
}

/**
 * A room's parsed PDUs in the order to process them: parents before children when both are in
 * the batch (a sender may list them in any order, and processing a child first would make us
 * fetch its parent with `/get_missing_events` although it is right here), otherwise transaction
 * order. The same event twice is processed once.
 */
export function orderForProcessing(events: readonly RoomEvent[]): RoomEvent[] {
  const unique = new Map<string, RoomEvent>();
  for (const event of events) if (!unique.has(event.eventId)) unique.set(event.eventId, event);
  const list = [...unique.values()];
  const position = new Map(list.map((e, i) => [e.eventId, i]));
  const children = new Map<number, number[]>();
  const waitingFor = new Array<number>(list.length).fill(0);
  list.forEach((event, i) => {
    for (const prev of new Set(event.prevEventIds)) {
      const parent = position.get(prev);
      if (parent === undefined || parent === i) continue;
      waitingFor[i]!++;
      const kids = children.get(parent);
      if (kids) kids.push(i);
      else children.set(parent, [i]);
    }
  });
  // Kahn's algorithm, always taking the earliest ready event in transaction order.
  const ready: number[] = [];
  list.forEach((_, i) => {
    if (waitingFor[i] === 0) ready.push(i);
  });
  const ordered: RoomEvent[] = [];
  const done = new Array<boolean>(list.length).fill(false);
  while (ready.length > 0) {
    let best = 0;
    for (let k = 1; k < ready.length; k++) if (ready[k]! < ready[best]!) best = k;
    const i = ready.splice(best, 1)[0]!;
    done[i] = true;
    ordered.push(list[i]!);
    for (const child of children.get(i) ?? []) {
      if (--waitingFor[child]! === 0) ready.push(child);
    }
  }
  // A cycle (impossible with hash ids, possible with forged v1/v2 ids): the rest in transaction
  // order; the checks will deal with them.
  list.forEach((event, i) => {
    if (!done[i]) ordered.push(event);
  });
  return ordered;
}

// ---- the answer ----

export interface TransactionResponse {
  readonly pdus: Record<string, { readonly error?: string }>;
}

/**
 * The 200 answer: every PDU we processed, by event id, with an `error` when it failed. "The
 * server is to use this response even in the event of one or more PDUs failing to be processed."
 */
export function transactionResponse(results: Iterable<readonly [eventId: string, error: string | undefined]>): TransactionResponse {
  const pdus: Record<string, { error?: string }> = {};
  for (const [eventId, error] of results) {
    // Event ids start with `$`, so no key can reach Object.prototype; define it anyway.
    Object.defineProperty(pdus, eventId, {
      value: error === undefined ? {} : { error },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { pdus };
}
