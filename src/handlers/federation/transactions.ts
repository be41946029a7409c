// `PUT /_matrix/federation/v1/send/{txnId}` (spec: server-server API §Transactions, §Checks
// performed on receipt of a PDU, §Server Access Control Lists; `transactions.yaml`).
//
// The envelope is checked (core/transactions.ts: ≤ 50 PDUs, ≤ 100 EDUs, else 400); the PDUs are
// grouped by room, and for each room: unknown room or a server ACL that denies the origin → an
// error for each of its PDUs; then steps 1–3 here, on the receiving process (format, signatures
// with keys fetched in one batch, content hash — a mismatch goes on as the redacted event), and
// steps 4–6 by the room's events writer (`receivePdus`, over RPC in worker mode). The EDUs follow,
// through the EDU intake. The answer names every PDU that has an id, with an `error` for those not
// taken.
//
// Idempotence: a transaction is identified by its origin and id. A retry while the first is being
// processed waits for it, and a retry afterwards (within `REMEMBERED_MS`) gets the same answer;
// neither processes anything again. This is per process, in memory, as Synapse keeps it; a retry
// that reaches another worker or a restarted process is processed again, which is harmless: every
// PDU is then known already, and EDUs are states (typing, presence) or only move forward (receipts).

import type { JsonObject } from '../../core/json.js';
import { parseReceivedPdu, trimReceivedPdu } from '../../core/pdu-checks.js';
import { groupPdusByRoom, transactionResponse, validateTransaction, type TransactionResponse } from '../../core/transactions.js';
import { Errors, MatrixError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import { LruCache } from '../../util/lru.js';
import type { CoreParts } from '../kernel/core.js';
import { sendAnswerError } from './pdu-intake.js';
import type { EduIntake } from './edu-intake.js';
import type { PduChecker } from './fetcher.js';
import type { ServerAccess } from './server-access.js';

/** How long a transaction's answer is kept for retries. */
const REMEMBERED_MS = 30 * 60_000;
const REMEMBERED_MAX = 10_000;

export class TransactionHandler {
  private readonly answers = new LruCache<string, { at: number; answer: Promise<TransactionResponse> }>(REMEMBERED_MAX);

  constructor(
    private readonly core: CoreParts<'eventsWriter' | 'roomState' | 'now'>,
    private readonly deps: { access: ServerAccess; checker: PduChecker; edus: EduIntake; log: Logger },
  ) {}

  /** The answer to a transaction; throws a Matrix error for an envelope the spec refuses. */
  receive(origin: string, txnId: string, body: unknown): Promise<TransactionResponse> {
    const key = `${origin}\u0000${txnId}`;
    const now = this.core.now();
    const remembered = this.answers.get(key);
    if (remembered && now - remembered.at < REMEMBERED_MS) return remembered.answer;
    const answer = this.process(origin, txnId, body);
    this.answers.set(key, { at: now, answer });
    // A failure (the database is down) is not an answer to remember: the retry processes it again.
    answer.catch(() => {
      if (this.answers.get(key)?.answer === answer) this.answers.delete(key);
    });
    return answer;
  }

  private async process(origin: string, txnId: string, body: unknown): Promise<TransactionResponse> {
    const validated = validateTransaction(txnId, body, origin);
    if (!validated.ok) {
      const { errcode, message } = validated.error;
      // 400: the sender must not retry this transaction.
      throw errcode === 'M_NOT_JSON'
        ? Errors.notJson(message)
        : errcode === 'M_INVALID_PARAM'
          ? Errors.invalidParam(message)
          : Errors.badJson(message);
    }
    const { transaction } = validated;
    if (transaction.bodyOriginMismatch) this.deps.log.debug({ origin, txnId }, 'a transaction names another origin in its body');
    // As Synapse's "Received txn ... from ...": which process took which transaction, for the admin.
    this.deps.log.info(
      { origin, txnId, pdus: transaction.pdus.length, edus: transaction.edus.length },
      `received transaction ${txnId} from ${origin} (${transaction.pdus.length} PDUs, ${transaction.edus.length} EDUs)`,
    );
    const results: Array<[string, string | undefined]> = [];
    const receivedAt = this.core.now();
    const { rooms } = groupPdusByRoom(transaction.pdus.map((pdu) => trimReceivedPdu(pdu, receivedAt).pdu));
    await Promise.all(rooms.map(async ({ roomId, pdus }) => results.push(...(await this.receiveRoom(origin, roomId, pdus)))));
    await this.deps.edus.receive(origin, transaction.edus);
    return transactionResponse(results);
  }

  /** One room's PDUs: the room checks, steps 1–3, then the room's writer. */
  private async receiveRoom(origin: string, roomId: string, pdus: readonly JsonObject[]): Promise<Array<[string, string | undefined]>> {
    const named = (pdu: JsonObject) => (typeof pdu.event_id === 'string' ? pdu.event_id : undefined);
    const failAll = (error: string) =>
      pdus.flatMap((pdu): Array<[string, string]> => {
        const id = named(pdu);
        return id === undefined ? [] : [[id, error]];
      });
    let version;
    try {
      version = await this.core.roomState.roomVersion(roomId);
    } catch (err) {
      if (err instanceof MatrixError && err.status === 404) return failAll(`unknown room ${roomId}`);
      throw err;
    }
    if (!(await this.deps.access.aclAllows(origin, roomId))) {
      // "the PDU MUST be ignored with an appropriate error included in the response for the respective event ID"
      const error = `server ${origin} is denied by the room's server ACL`;
      return pdus.flatMap((pdu): Array<[string, string]> => {
        const parsed = parseReceivedPdu(pdu, version, roomId);
        const id = parsed.ok ? parsed.event.eventId : named(pdu);
        return id === undefined ? [] : [[id, error]];
      });
    }

    const checked = await this.deps.checker.check(pdus, version, roomId);
    const results: Array<[string, string | undefined]> = [];
    const accepted: JsonObject[] = [];
    checked.forEach(({ eventId, outcome }, i) => {
      if (outcome.outcome === 'drop') {
        // Without the room version's format there may be no id to answer under (rooms v3+ compute it).
        const id = eventId ?? named(pdus[i]!);
        if (id !== undefined) results.push([id, outcome.reason]);
        this.deps.log.info({ origin, roomId, eventId: id, reason: outcome.reason }, 'dropped a received event');
        return;
      }
      if (outcome.outcome === 'redacted') this.deps.log.info({ origin, roomId, eventId: outcome.event.eventId }, outcome.reason);
      accepted.push(outcome.event.pdu);
    });
    if (accepted.length === 0) return results;
    const outcomes = await this.core.eventsWriter.receivePdus(origin, roomId, accepted);
    for (const outcome of outcomes) if (outcome.eventId !== undefined) results.push([outcome.eventId, sendAnswerError(outcome)]);
    return results;
  }
}
