// What the inbound side of federation needs from the network, built on the federation client and
// keyring of the process: steps 1–3 of §Checks performed on receipt of a PDU for any PDU we are
// given (`PduChecker`: format, signatures with fetched keys, content hash), and the requests the
// events writer's intake makes for missing events (`FederationFetcher`: spec server-server API
// §Retrieving events, §Backfilling and retrieving missing events, §Retrieving event authorisation
// information). Every answer is handed over as the raw JSON the server sent: the intake checks it.

import type { RoomEvent } from '../../core/events.js';
import { isJsonObject } from '../../core/json.js';
import { checkParsedPdu, keyRequestsFor, parseReceivedPdu, type KeyLookup, type PduCheckOutcome } from '../../core/pdu-checks.js';
import type { RoomVersion } from '../../core/room-versions.js';
import type { FederationClient } from '../../federation/client.js';
import type { Keyring, VerifyKeyResults } from '../../federation/keyring.js';
import type { FederationFetcher, FederationInbound, MissingEventsRequest } from './pdu-intake.js';

const enc = encodeURIComponent;

/** Fetches of events time out sooner than the client's default: the room's queue waits meanwhile. */
const FETCH_TIMEOUT_MS = 30_000;

export interface CheckedPdu {
  readonly eventId: string | undefined;
  readonly outcome: PduCheckOutcome;
}

/** Steps 1–3 on PDUs of one room, keys fetched in one batch per call (as Synapse batches them). */
export class PduChecker {
  constructor(private readonly keyring: Pick<Keyring, 'getVerifyKeys'>) {}

  /**
   * One outcome per PDU, in order, with the event id when the PDU has the room version's format
   * (so a PDU dropped for its signatures can still be answered under its id). `unsigned` must
   * already be trimmed (`trimReceivedPdu`).
   */
  async check(pdus: readonly unknown[], version: RoomVersion, roomId: string): Promise<CheckedPdu[]> {
    const parsed = pdus.map((pdu) => parseReceivedPdu(pdu, version, roomId));
    const events: Array<{ event: RoomEvent; roomVersion: RoomVersion }> = [];
    for (const result of parsed) if (result.ok) events.push({ event: result.event, roomVersion: version });
    const keys: VerifyKeyResults = events.length === 0 ? new Map() : await this.keyring.getVerifyKeys(keyRequestsFor(events));
    const lookup: KeyLookup = (serverName, keyId) => keys.get(serverName)?.get(keyId);
    return parsed.map((result) =>
      result.ok
        ? { eventId: result.event.eventId, outcome: checkParsedPdu(result.event, version, lookup) }
        : { eventId: undefined, outcome: result.outcome },
    );
  }
}

/** The intake's requests, sent with the federation client. */
export function federationFetcher(client: Pick<FederationClient, 'request'>): FederationFetcher {
  const base = '/_matrix/federation/v1';
  return {
    async getEvent(server, eventId) {
      const answer = await client.request(server, {
        method: 'GET',
        path: `${base}/event/${enc(eventId)}`,
        timeoutMs: FETCH_TIMEOUT_MS,
        allowNul: true,
      });
      const pdus = isJsonObject(answer) ? answer.pdus : undefined;
      if (!Array.isArray(pdus) || pdus.length === 0) throw new Error(`${server} answered /event without a PDU`);
      return pdus[0];
    },
    async getEventAuth(server, roomId, eventId) {
      const answer = await client.request(server, {
        method: 'GET',
        path: `${base}/event_auth/${enc(roomId)}/${enc(eventId)}`,
        timeoutMs: FETCH_TIMEOUT_MS,
        allowNul: true,
      });
      const chain = isJsonObject(answer) ? answer.auth_chain : undefined;
      if (!Array.isArray(chain)) throw new Error(`${server} answered /event_auth without an auth_chain`);
      return chain;
    },
    async getMissingEvents(server, roomId, request: MissingEventsRequest) {
      const answer = await client.request(server, {
        method: 'POST',
        path: `${base}/get_missing_events/${enc(roomId)}`,
        body: {
          earliest_events: [...request.earliest],
          latest_events: [...request.latest],
          limit: request.limit,
          min_depth: request.minDepth,
        },
        timeoutMs: FETCH_TIMEOUT_MS,
        allowNul: true,
      });
      const events = isJsonObject(answer) ? answer.events : undefined;
      if (!Array.isArray(events)) throw new Error(`${server} answered /get_missing_events without events`);
      return events;
    },
    async getStateIds(server, roomId, eventId) {
      const answer = await client.request(server, {
        method: 'GET',
        path: `${base}/state_ids/${enc(roomId)}`,
        query: { event_id: eventId },
        timeoutMs: FETCH_TIMEOUT_MS,
      });
      if (!isJsonObject(answer)) throw new Error(`${server} answered /state_ids with something else than an object`);
      return { pduIds: answer.pdu_ids, authChainIds: answer.auth_chain_ids };
    },
  };
}

/** The events writer's connection to other servers (`EventsWriter.useFederation`). */
export function federationInbound(client: Pick<FederationClient, 'request'>, checker: PduChecker): FederationInbound {
  return {
    fetcher: federationFetcher(client),
    verify: async (pdu, version, roomId) => (await checker.check([pdu], version, roomId))[0]!.outcome,
  };
}
