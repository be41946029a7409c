// Other servers' signing keys: found, checked, cached, and served again as a notary (spec:
// server-server API §Retrieving server keys; keys_server.yaml, keys_query.yaml).
//
// A key is looked for where Synapse's keyring looks, in its order: memory, then the database, then
// the trusted key servers (`trusted_key_servers`, asked together with `POST /_matrix/key/v2/query`),
// then the server itself (`GET /_matrix/key/v2/server`). Each answer is checked with core's
// validators (self-signature; the notary's signature when its keys are configured) and its keys
// stored with their validity (never more than 7 days after the fetch). Concurrent lookups of one
// server share one fetch, and a server whose keys could not be had is not asked again for a short,
// growing while (10 s doubling to 10 min), so a dead server is not hammered.

import type { Logger } from 'pino';
import type { JsonObject } from '../core/json.js';
import {
  buildKeyQueryBody,
  isStoredKeysAnswerFresh,
  notarise,
  validateNotaryResponse,
  validateServerKeysResponse,
  verifyKeysOf,
  type KeyQuery,
  type KeyRequest,
  type ServerKeys,
  type ServerVerifyKey,
} from '../core/server-keys.js';
import { isJsonObject } from '../core/json.js';
import type { ServerKeysStore } from '../storage/server-keys-store.js';
import type { FederationClient } from './client.js';
import { FederationInvalidResponseError } from './errors.js';
import type { OwnServerKeys } from './own-keys.js';
import { isFederationAllowed, type FederationSettings, type TrustedKeyServer } from './settings.js';

/** Key answers are small; anything larger is not one. */
const MAX_KEY_ANSWER_BYTES = 1024 * 1024;
/** Synapse gives a server 10 s to answer for its keys (it is a cheap request). */
const KEY_FETCH_TIMEOUT_MS = 10_000;
const FAILURE_BACKOFF_START_MS = 10_000;
const FAILURE_BACKOFF_MAX_MS = 10 * 60_000;
/** Servers whose keys are kept in memory (least recently used dropped first). */
const MEMORY_SERVERS = 10_000;

/** Keys found: server name → key id → key. */
export type VerifyKeyResults = ReadonlyMap<string, ReadonlyMap<string, ServerVerifyKey>>;

export interface KeyringOptions {
  readonly ownKeys: OwnServerKeys;
  readonly store: ServerKeysStore;
  readonly client: FederationClient;
  readonly settings: Pick<FederationSettings, 'trustedKeyServers' | 'domainWhitelist'>;
  readonly log: Logger;
  readonly now?: () => number;
}

interface FailureState {
  readonly retryAt: number;
  readonly failures: number;
}

export class Keyring {
  private readonly memory = new Map<string, Map<string, ServerVerifyKey>>();
  private readonly fetching = new Map<string, Promise<void>>();
  private readonly directFetches = new Map<string, Promise<ServerKeys>>();
  private readonly failures = new Map<string, FailureState>();
  private readonly now: () => number;
  private readonly serverName: string;

  constructor(private readonly options: KeyringOptions) {
    this.now = options.now ?? Date.now;
    this.serverName = options.ownKeys.serverName;
  }

  /**
   * The keys that satisfy `requests`: each found key valid until at least its request's
   * `minimumValidUntilTs`. Keys that cannot be found (or not valid for long enough) are missing
   * from the result; this never throws for an unreachable server.
   */
  async getVerifyKeys(requests: readonly KeyRequest[]): Promise<VerifyKeyResults> {
    const byServer = new Map<string, Map<string, number>>();
    for (const { serverName, keyId, minimumValidUntilTs } of requests) {
      const wanted = byServer.get(serverName) ?? new Map<string, number>();
      wanted.set(keyId, Math.max(minimumValidUntilTs, wanted.get(keyId) ?? minimumValidUntilTs));
      byServer.set(serverName, wanted);
    }
    const results = new Map<string, ReadonlyMap<string, ServerVerifyKey>>();
    await Promise.all(
      [...byServer].map(async ([serverName, wanted]) => {
        results.set(serverName, await this.keysFor(serverName, wanted));
      }),
    );
    return results;
  }

  /** One key, valid until at least `minimumValidUntilTs`, or `undefined`. */
  async getVerifyKey(serverName: string, keyId: string, minimumValidUntilTs: number): Promise<ServerVerifyKey | undefined> {
    return (await this.getVerifyKeys([{ serverName, keyId, minimumValidUntilTs }])).get(serverName)?.get(keyId);
  }

  private async keysFor(serverName: string, wanted: ReadonlyMap<string, number>): Promise<ReadonlyMap<string, ServerVerifyKey>> {
    if (serverName === this.serverName) {
      return satisfying(new Map(this.options.ownKeys.verifyKeys.map((k) => [k.keyId, k])), wanted);
    }
    let missing = this.missing(serverName, wanted);
    if (missing.size > 0) {
      this.remember(serverName, await this.options.store.keysOf(serverName, [...missing.keys()]));
      missing = this.missing(serverName, wanted);
    }
    if (missing.size > 0 && !this.isBackingOff(serverName)) {
      await this.fetchMissing(serverName, missing);
    }
    return satisfying(this.memory.get(serverName) ?? new Map(), wanted);
  }

  /** Which of `wanted` memory does not hold with enough validity. */
  private missing(serverName: string, wanted: ReadonlyMap<string, number>): Map<string, number> {
    const known = this.memory.get(serverName);
    const missing = new Map<string, number>();
    for (const [keyId, minimum] of wanted) {
      const key = known?.get(keyId);
      if (!key || key.validUntilTs < minimum) missing.set(keyId, minimum);
    }
    return missing;
  }

  /**
   * Fetches from the network, one fetch per server at a time: a caller arriving while one is under
   * way waits for it, and starts another only if what it needs is still missing.
   */
  private async fetchMissing(serverName: string, missing: ReadonlyMap<string, number>): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const pending = this.fetching.get(serverName);
      if (pending) {
        await pending;
        if (this.missing(serverName, missing).size === 0 || this.isBackingOff(serverName)) return;
        continue;
      }
      const fetch = this.fetchFromNetwork(serverName, missing).finally(() => this.fetching.delete(serverName));
      this.fetching.set(serverName, fetch);
      await fetch;
      return;
    }
  }

  private async fetchFromNetwork(serverName: string, wanted: ReadonlyMap<string, number>): Promise<void> {
    const { log, settings } = this.options;
    const trusted = settings.trustedKeyServers.filter((s) => s.serverName !== this.serverName);
    if (trusted.length > 0) {
      await Promise.all(
        trusted.map((notary) =>
          this.fetchThroughNotary(notary, serverName, wanted).catch((err: unknown) => {
            log.warn(
              { notary: notary.serverName, server: serverName, err: (err as Error).message },
              `key lookup through ${notary.serverName} failed`,
            );
          }),
        ),
      );
    }
    if (this.missing(serverName, wanted).size > 0 && isFederationAllowed(settings, serverName)) {
      try {
        await this.fetchDirect(serverName);
      } catch (err) {
        log.warn({ server: serverName, err: (err as Error).message }, `fetching the keys of ${serverName} failed`);
      }
    }
    if (this.missing(serverName, wanted).size === 0) {
      this.failures.delete(serverName);
      return;
    }
    const failures = (this.failures.get(serverName)?.failures ?? 0) + 1;
    const backoff = Math.min(FAILURE_BACKOFF_MAX_MS, FAILURE_BACKOFF_START_MS * 2 ** (failures - 1));
    this.failures.set(serverName, { failures, retryAt: this.now() + backoff });
    log.info(
      { server: serverName, keys: [...this.missing(serverName, wanted).keys()], retryInMs: backoff },
      `keys of ${serverName} not found`,
    );
  }

  private isBackingOff(serverName: string): boolean {
    const failure = this.failures.get(serverName);
    return failure !== undefined && this.now() < failure.retryAt;
  }

  /** `POST /_matrix/key/v2/query` to one notary, for the keys of one server. */
  private async fetchThroughNotary(notary: TrustedKeyServer, serverName: string, wanted: ReadonlyMap<string, number>): Promise<void> {
    const body = buildKeyQueryBody([...wanted].map(([keyId, minimumValidUntilTs]) => ({ serverName, keyId, minimumValidUntilTs })));
    const answer = await this.options.client.request(notary.serverName, {
      method: 'POST',
      path: '/_matrix/key/v2/query',
      body,
      timeoutMs: KEY_FETCH_TIMEOUT_MS,
      maxResponseBytes: MAX_KEY_ANSWER_BYTES,
    });
    const fetchedAt = this.now();
    const checked = validateNotaryResponse(answer, { notaryServerName: notary.serverName, notaryVerifyKeys: notary.verifyKeys });
    if (!checked) throw new FederationInvalidResponseError(notary.serverName, `the key query answer of ${notary.serverName} is malformed`);
    for (const rejected of checked.rejected) {
      this.options.log.warn(
        { notary: notary.serverName, server: rejected.serverName, reason: rejected.error.message },
        'notary key answer refused',
      );
    }
    // Only answers about the server asked: a notary does not get to fill our cache with others.
    for (const keys of checked.accepted) if (keys.serverName === serverName) await this.storeAnswer(keys, fetchedAt, notary.serverName);
  }

  /**
   * `GET /_matrix/key/v2/server` from the server itself, checked and stored. Concurrent calls for
   * one server share one request. Throws a `FederationRequestError` when it cannot be had.
   */
  fetchDirect(serverName: string): Promise<ServerKeys> {
    const pending = this.directFetches.get(serverName);
    if (pending) return pending;
    const fetch = (async () => {
      const answer = await this.options.client.request(serverName, {
        method: 'GET',
        path: '/_matrix/key/v2/server',
        timeoutMs: KEY_FETCH_TIMEOUT_MS,
        maxResponseBytes: MAX_KEY_ANSWER_BYTES,
      });
      const fetchedAt = this.now();
      const checked = validateServerKeysResponse(answer, serverName);
      if (!checked.ok)
        throw new FederationInvalidResponseError(serverName, `the keys of ${serverName} are refused: ${checked.error.message}`);
      await this.storeAnswer(checked.keys, fetchedAt, serverName);
      return checked.keys;
    })().finally(() => this.directFetches.delete(serverName));
    this.directFetches.set(serverName, fetch);
    return fetch;
  }

  private async storeAnswer(keys: ServerKeys, fetchedAt: number, fromServer: string): Promise<void> {
    const verifyKeys = verifyKeysOf(keys, fetchedAt);
    await this.options.store.storeAnswer(keys.serverName, keys.json, keys.validUntilTs, verifyKeys, fetchedAt, fromServer);
    this.remember(keys.serverName, verifyKeys);
    this.options.log.debug({ server: keys.serverName, from: fromServer, keys: verifyKeys.map((k) => k.keyId) }, 'stored server keys');
  }

  /** Adds keys to memory, keeping for each id the sighting valid for longer (as the store does). */
  private remember(serverName: string, keys: readonly ServerVerifyKey[]): void {
    const known = this.memory.get(serverName) ?? new Map<string, ServerVerifyKey>();
    for (const key of keys) {
      const existing = known.get(key.keyId);
      if (!existing || existing.publicKey !== key.publicKey || key.validUntilTs >= existing.validUntilTs) known.set(key.keyId, key);
    }
    // Re-inserted, so the map's order is least recently used first.
    this.memory.delete(serverName);
    this.memory.set(serverName, known);
    while (this.memory.size > MEMORY_SERVERS) this.memory.delete(this.memory.keys().next().value!);
  }

  // ---- acting as a notary ----

  /**
   * Answers a key query (`/_matrix/key/v2/query`): for each server, its stored answer when it
   * holds the keys asked for and is fresh enough (valid until the time asked, in the first half of
   * its life), else a fresh one from the server — the stored one when that fails (keys_server.yaml:
   * "continue to return the last response they received") — each signed by us as well. An empty
   * key map asks for all keys, valid until `minimumForAllKeys` (default now). Servers whose keys
   * cannot be had are left out.
   */
  async queryAsNotary(query: KeyQuery, minimumForAllKeys?: number): Promise<JsonObject[]> {
    const now = this.now();
    const answers = await Promise.all(
      [...query].map(async ([serverName, keyIds]): Promise<JsonObject | undefined> => {
        if (serverName === this.serverName) return this.options.ownKeys.answer();
        const minimum = keyIds.size === 0 ? (minimumForAllKeys ?? now) : Math.max(...keyIds.values());
        const holdsKeys = (json: JsonObject) => keyIds.size === 0 || [...keyIds.keys()].some((keyId) => listsKey(json, keyId));
        let stored = await this.options.store.answerOf(serverName);
        const usable = stored !== undefined && holdsKeys(stored.json) && isStoredKeysAnswerFresh(stored, minimum, now);
        if (!usable && isFederationAllowed(this.options.settings, serverName)) {
          try {
            await this.fetchDirect(serverName);
            stored = await this.options.store.answerOf(serverName);
          } catch (err) {
            this.options.log.info(
              { server: serverName, err: (err as Error).message },
              `notary: the keys of ${serverName} could not be fetched`,
            );
          }
        }
        if (!stored || !holdsKeys(stored.json)) return undefined;
        return notarise(stored.json, this.serverName, this.options.ownKeys.signingKeys);
      }),
    );
    return answers.filter((a): a is JsonObject => a !== undefined);
  }
}

function listsKey(json: JsonObject, keyId: string): boolean {
  return (
    (isJsonObject(json.verify_keys) && Object.hasOwn(json.verify_keys, keyId)) ||
    (isJsonObject(json.old_verify_keys) && Object.hasOwn(json.old_verify_keys, keyId))
  );
}

function satisfying(known: ReadonlyMap<string, ServerVerifyKey>, wanted: ReadonlyMap<string, number>): Map<string, ServerVerifyKey> {
  const out = new Map<string, ServerVerifyKey>();
  for (const [keyId, minimum] of wanted) {
    const key = known.get(keyId);
    if (key && key.validUntilTs >= minimum) out.set(keyId, key);
  }
  return out;
}
