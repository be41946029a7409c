// A homeserver of another name played by the test, without any network: its own ed25519 key, a
// copy of a room's DAG in memory (its own events, and ours once it `learn`s them), events built and
// signed with core functions, and the requests the intake makes (`FederationFetcher`) answered
// from that DAG. Its state after each event is computed with core's state resolution, so it is an
// independent second opinion on what the room's state should be.

import { checkReceivedPdu, type KeyLookup } from '../../src/core/pdu-checks.js';
import { selectAuthEventIds } from '../../src/core/auth-events.js';
import { finaliseEvent, parsePdu } from '../../src/core/event-format.js';
import { authEventIdsWithCreate, stateKey, type RoomEvent, type StateKey } from '../../src/core/events.js';
import { generateLegacyEventId } from '../../src/core/hashes.js';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import type { RoomVersion } from '../../src/core/room-versions.js';
import { encodePublicKey, generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import { resolveState } from '../../src/core/state-res.js';
import type { FederationFetcher, FederationInbound, MissingEventsRequest } from '../../src/handlers/federation/pdu-intake.js';
import type { TestHomeserver } from './homeserver.js';

export interface RemoteDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: JsonObject;
  /** Default: the remote's forward extremities. */
  prevs?: string[];
  /** Default: chosen from the state before the event, as the spec's selection algorithm says. */
  authEvents?: string[];
  depth?: number;
  originServerTs?: number;
  /** Rooms v1/v2: the event id (the sender chooses it). */
  eventId?: string;
  /** The state before the event, when its prevs are not all known here (forged graphs). */
  stateBefore?: Map<StateKey, string>;
  /** Changes the PDU after it is signed (a forgery: the signature no longer matches). */
  tamper?: (pdu: JsonObject) => void;
}

export class RemoteServer {
  readonly key: SigningKey;
  readonly pdus = new Map<string, JsonObject>();
  readonly events = new Map<string, RoomEvent>();
  private readonly stateAfter = new Map<string, Map<StateKey, string>>();
  private readonly order: string[] = [];
  /** Events the remote will not serve (to leave gaps in what it answers). */
  readonly withheld = new Set<string>();
  /** Every request made to it: `[method, eventId or room]`. */
  readonly calls: Array<[string, string]> = [];
  /** Replaces an answer (hostile servers): return undefined to answer normally. */
  override: Partial<Record<keyof FederationFetcher, (...args: unknown[]) => unknown>> = {};
  private readonly keys = new Map<string, { serverName: string; keyId: string; publicKey: string }>();

  constructor(
    readonly serverName: string,
    readonly roomId: string,
    readonly version: RoomVersion,
    homeserver: { serverName: string; signingKey: SigningKey },
    /** The remote's signing key (a remote served over HTTPS publishes it); a new one by default. */
    key: SigningKey = generateSigningKey(),
  ) {
    this.key = key;
    this.trust(serverName, this.key);
    this.trust(homeserver.serverName, homeserver.signingKey);
  }

  trust(serverName: string, key: SigningKey): void {
    this.keys.set(`${serverName}\u0000${key.keyId}`, { serverName, keyId: key.keyId, publicKey: encodePublicKey(key) });
  }

  /** Takes an event into the remote's DAG (its own, or one of ours). */
  learn(pdu: JsonObject, stateBefore?: Map<StateKey, string>): RoomEvent {
    const event = parsePdu(pdu, this.version);
    if (this.events.has(event.eventId)) return event;
    this.pdus.set(event.eventId, pdu);
    this.events.set(event.eventId, event);
    this.order.push(event.eventId);
    const after = new Map(stateBefore ?? this.stateBefore(event.prevEventIds));
    if (event.stateKey !== undefined) after.set(stateKey(event.type, event.stateKey), event.eventId);
    this.stateAfter.set(event.eventId, after);
    return event;
  }

  /** Takes every event of the room the homeserver has in its timeline, in order. */
  async learnFrom(hs: TestHomeserver): Promise<void> {
    const rows = await hs.homeserver.database.all<{ json: string }>('SELECT json FROM events WHERE room_id = ? ORDER BY stream_ordering', [
      this.roomId,
    ]);
    for (const row of rows) this.learn(JSON.parse(row.json) as JsonObject);
  }

  /** Events of its DAG without children, oldest first. */
  extremities(): string[] {
    const referenced = new Set<string>();
    for (const event of this.events.values()) for (const prev of event.prevEventIds) referenced.add(prev);
    return this.order.filter((id) => !referenced.has(id));
  }

  /** The state before an event with these prevs: the state after the only one, or resolved. */
  stateBefore(prevs: readonly string[]): Map<StateKey, string> {
    const sets = prevs.map((p) => this.stateAfter.get(p)).filter((s): s is Map<StateKey, string> => s !== undefined);
    if (sets.length === 0) return new Map();
    return resolveState(this.version, sets, { get: (id) => this.events.get(id) });
  }

  /** The state after one of its events. */
  state(eventId: string): Map<StateKey, string> {
    return new Map(this.stateAfter.get(eventId));
  }

  /** Builds, hashes and signs an event, and takes it into the DAG. */
  build(draft: RemoteDraft): { pdu: JsonObject; event: RoomEvent } {
    const prevs = draft.prevs ?? this.extremities();
    const before = draft.stateBefore ?? this.stateBefore(prevs);
    const authIds = draft.authEvents ?? selectAuthEventIds(draft.type, draft.stateKey, draft.sender, draft.content, this.version, before);
    const legacy = this.version.eventIdFormat === 'v1';
    const ref = (id: string): JsonValue =>
      legacy ? [id, (this.pdus.get(id)?.hashes as JsonObject | undefined) ?? { sha256: 'AAAA' }] : id;
    const pdu: JsonObject = {
      type: draft.type,
      room_id: this.roomId,
      sender: draft.sender,
      content: draft.content,
      origin_server_ts: draft.originServerTs ?? Date.now(),
      depth: draft.depth ?? Math.max(0, ...prevs.map((p) => this.events.get(p)?.depth ?? 0)) + 1,
      prev_events: prevs.map(ref),
      auth_events: authIds.map(ref),
    };
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (legacy) pdu.event_id = draft.eventId ?? generateLegacyEventId(this.serverName);
    const { pdu: signed } = finaliseEvent(pdu, this.version, this.serverName, this.key);
    draft.tamper?.(signed);
    if (draft.tamper) {
      // A forgery never enters the remote's honest DAG; it is only sent.
      return { pdu: signed, event: parsePdu(signed, this.version) };
    }
    return { pdu: signed, event: this.learn(signed, draft.stateBefore) };
  }

  /** The auth chain of an event, as PDUs. */
  private authChain(eventIds: readonly string[]): JsonObject[] {
    const seen = new Set<string>();
    const stack = [...eventIds];
    const out: JsonObject[] = [];
    while (stack.length > 0) {
      const id = stack.pop()!;
      const event = this.events.get(id);
      if (!event) continue;
      for (const authId of authEventIdsWithCreate(event, this.version.roomIdFromCreateEvent)) {
        if (seen.has(authId) || !this.pdus.has(authId)) continue;
        seen.add(authId);
        if (!this.withheld.has(authId)) out.push(this.pdus.get(authId)!);
        stack.push(authId);
      }
    }
    return out;
  }

  readonly fetcher: FederationFetcher = {
    getEvent: async (_server, eventId) => {
      this.calls.push(['getEvent', eventId]);
      const replaced = this.override.getEvent?.(eventId);
      if (replaced !== undefined) return replaced;
      const pdu = this.pdus.get(eventId);
      if (!pdu || this.withheld.has(eventId)) throw new Error(`404 ${eventId}`);
      return pdu;
    },
    getEventAuth: async (_server, _roomId, eventId) => {
      this.calls.push(['getEventAuth', eventId]);
      const replaced = this.override.getEventAuth?.(eventId);
      if (replaced !== undefined) return replaced as unknown[];
      return this.authChain([eventId]);
    },
    getMissingEvents: async (_server, _roomId, request: MissingEventsRequest) => {
      this.calls.push(['getMissingEvents', request.latest.join(',')]);
      const replaced = this.override.getMissingEvents?.(request);
      if (replaced !== undefined) return replaced as unknown[];
      // spec: a breadth-first walk of prev_events from `latest`, skipping `earliest`.
      const stop = new Set(request.earliest);
      const seen = new Set(request.latest);
      const out: JsonObject[] = [];
      let frontier = [...request.latest];
      while (frontier.length > 0 && out.length < request.limit) {
        const next: string[] = [];
        for (const id of frontier) {
          for (const prev of this.events.get(id)?.prevEventIds ?? []) {
            if (seen.has(prev) || stop.has(prev)) continue;
            seen.add(prev);
            const pdu = this.pdus.get(prev);
            if (!pdu || this.withheld.has(prev) || out.length >= request.limit) continue;
            out.push(pdu);
            next.push(prev);
          }
        }
        frontier = next;
      }
      return out;
    },
    getStateIds: async (_server, _roomId, eventId) => {
      this.calls.push(['getStateIds', eventId]);
      const replaced = this.override.getStateIds?.(eventId);
      if (replaced !== undefined) return replaced as { pduIds: unknown; authChainIds: unknown };
      const event = this.events.get(eventId);
      if (!event) throw new Error(`404 ${eventId}`);
      const before = [...this.stateBefore(event.prevEventIds).values()];
      return { pduIds: before, authChainIds: this.authChain(before).map((pdu) => parsePdu(pdu, this.version).eventId) };
    },
  };

  /** Steps 1–3 as the receiving process runs them, with the keys of both servers known. */
  readonly verify: FederationInbound['verify'] = async (pdu, roomVersion, roomId) => {
    const lookup: KeyLookup = (serverName, keyId) => {
      const key = this.keys.get(`${serverName}\u0000${keyId}`);
      return key ? { ...key, validUntilTs: Number.MAX_SAFE_INTEGER, old: false } : undefined;
    };
    return checkReceivedPdu(pdu, roomVersion, lookup, roomId);
  };

  get inbound(): FederationInbound {
    return { fetcher: this.fetcher, verify: this.verify };
  }

  /** The number of requests of one kind. */
  count(method: keyof FederationFetcher): number {
    return this.calls.filter(([m]) => m === method).length;
  }
}
