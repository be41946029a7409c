// Steps 1–3 of the spec's checks on received PDUs (server-server API §Checks performed on receipt
// of a PDU: format, signatures, content hash) for a batch of PDUs of one room, with the keys they
// need fetched in one go through the keyring. Used for what joins, leaves, knocks and invites
// carry (send_join answers, invites received).

import { checkParsedPdu, keyRequestsFor, parseReceivedPdu, trimReceivedPdu, type PduCheckOutcome } from '../core/pdu-checks.js';
import type { RoomEvent } from '../core/events.js';
import type { RoomVersion } from '../core/room-versions.js';
import type { Keyring } from './keyring.js';

/** One outcome per PDU, in order (`unsigned` trimmed first, as for any received PDU). */
export async function verifyPdus(
  keyring: Pick<Keyring, 'getVerifyKeys'>,
  pdus: readonly unknown[],
  roomVersion: RoomVersion,
  roomId: string,
  now: number = Date.now(),
): Promise<PduCheckOutcome[]> {
  const parsed = pdus.map((pdu) => parseReceivedPdu(trimReceivedPdu(pdu, now).pdu, roomVersion, roomId));
  const events: RoomEvent[] = [];
  for (const result of parsed) if (result.ok) events.push(result.event);
  const keys = await keyring.getVerifyKeys(keyRequestsFor(events.map((event) => ({ event, roomVersion }))));
  const lookup = (serverName: string, keyId: string) => keys.get(serverName)?.get(keyId);
  return parsed.map((result) => (result.ok ? checkParsedPdu(result.event, roomVersion, lookup) : result.outcome));
}
