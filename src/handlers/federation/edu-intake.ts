// EDUs another server sends us in a transaction (spec: server-server API §EDUs, §Typing
// Notifications, §Presence, §Receipts, §Server Access Control Lists), dispatched by `edu_type`
// through a registry: each type has one handler, registered in one line below. A type without a
// handler is ignored, as the spec says of unknown EDU types.
//
// `core/edus.ts` has already refused what speaks for users of another server than the origin;
// here come the checks that need state: the room's server ACL, the user being joined, the event
// being ours to point at. Nothing an EDU holds can fail the transaction: a handler that throws is
// logged and the EDU dropped (but a database outage fails the transaction, so the sender retries).

import { parseEdu, type Edu } from '../../core/edus.js';
import type { JsonObject } from '../../core/json.js';
import { DatabaseUnavailableError } from '../../storage/database.js';
import type { Logger } from '../../util/log.js';
import type { CoreParts } from '../kernel/core.js';
import type { EphemeralWriters } from '../ephemeral/index.js';
import { DEFAULT_TYPING_TIMEOUT_MS } from '../ephemeral/typing.js';
import type { ServerAccess } from './server-access.js';

/** Who sent an EDU. */
export interface EduContext {
  /** The server that sent the transaction (authenticated). */
  readonly origin: string;
  /** The EDU's `content` as sent (for handlers that read it themselves). */
  readonly content: JsonObject;
}

/** What handles one EDU type; gets the EDU as `core/edus.ts` parsed it. */
export type EduHandler<E extends Edu = Edu> = (edu: E, ctx: EduContext) => Promise<void>;

type EduType = Exclude<Edu['type'], 'unknown'>;

export class EduIntake {
  private readonly handlers = new Map<string, EduHandler>();

  constructor(
    private readonly serverName: string,
    private readonly log: Logger,
  ) {}

  /** Registers the handler of an EDU type (one per type). */
  register<T extends EduType>(type: T, handler: EduHandler<Extract<Edu, { type: T }>>): void {
    if (this.handlers.has(type)) throw new Error(`an EDU handler for ${type} is registered already`);
    this.handlers.set(type, handler as EduHandler);
  }

  /** Handles the EDUs of one transaction, in order; each failure is logged and that EDU dropped. */
  async receive(origin: string, edus: readonly unknown[]): Promise<void> {
    for (const json of edus) {
      const parsed = parseEdu(json, { origin, localServerName: this.serverName });
      if (!parsed.ok) {
        this.log.debug({ origin, eduType: parsed.error.eduType, err: parsed.error.message }, 'ignored an EDU');
        continue;
      }
      const handler = parsed.edu.type === 'unknown' ? undefined : this.handlers.get(parsed.edu.type);
      if (!handler) continue;
      try {
        await handler(parsed.edu, { origin, content: (json as { content: JsonObject }).content });
      } catch (err) {
        if (err instanceof DatabaseUnavailableError) throw err;
        this.log.info({ origin, eduType: parsed.edu.type, err: String(err) }, 'an EDU could not be handled; dropped');
      }
    }
  }
}

/** The ephemeral EDUs this area handles itself: typing, receipts, presence. */
export function registerEphemeralEdus(
  intake: EduIntake,
  deps: {
    core: CoreParts<'roomState' | 'eventCache' | 'now' | 'config'>;
    writers: Pick<EphemeralWriters, 'typing' | 'receipts' | 'presence'>;
    access: ServerAccess;
  },
): void {
  const { core, writers, access } = deps;
  const joined = async (roomId: string, userId: string) => (await core.roomState.membership(roomId, userId)) === 'join';

  // m.typing: for a user of the origin joined to the room, in a room whose ACL lets the origin in.
  intake.register('m.typing', async (edu, { origin }) => {
    if (!(await core.roomState.roomExists(edu.roomId))) return;
    if (!(await access.aclAllows(origin, edu.roomId)) || !(await joined(edu.roomId, edu.userId))) return;
    await writers.typing.setTyping(edu.roomId, edu.userId, edu.typing, DEFAULT_TYPING_TIMEOUT_MS);
  });

  // m.receipt: read receipts of the origin's users, each for an event of our timeline in that room.
  intake.register('m.receipt', async (edu, { origin }) => {
    const allowed = new Map<string, boolean>();
    for (const receipt of edu.receipts) {
      let roomAllowed = allowed.get(receipt.roomId);
      if (roomAllowed === undefined) {
        roomAllowed = (await core.roomState.roomExists(receipt.roomId)) && (await access.aclAllows(origin, receipt.roomId));
        allowed.set(receipt.roomId, roomAllowed);
      }
      if (!roomAllowed || !(await joined(receipt.roomId, receipt.userId))) continue;
      // The schema has one event; of several, the latest we hold counts.
      const events = await core.eventCache.getMany(receipt.eventIds);
      let latest;
      for (const stored of events.values()) {
        if (stored.event.roomId !== receipt.roomId || stored.outsideTimeline) continue;
        if (!latest || stored.streamOrdering > latest.streamOrdering) latest = stored;
      }
      if (!latest) continue;
      await writers.receipts.putReceipt({
        roomId: receipt.roomId,
        userId: receipt.userId,
        receiptType: receipt.receiptType,
        threadId: receipt.threadId ?? null,
        eventId: latest.event.eventId,
        eventStreamOrdering: latest.streamOrdering,
        ts: receipt.ts ?? core.now(),
      });
    }
  });

  // m.presence: the origin's users that share a room with us, when presence is enabled.
  intake.register('m.presence', async (edu) => {
    if (core.config.presence.enabled === false) return;
    for (const update of edu.updates) {
      if ((await core.roomState.roomsOf(update.userId)).length === 0) continue;
      await writers.presence.setPresence(update.userId, update.presence, update.statusMsg ?? null);
    }
  });
  // m.device_list_update, m.signing_key_update and m.direct_to_device are registered where the
  // process is composed (process/services.ts), with the E2EE area's handlers.
}
