// Push rules (S:data/api/client-server/pushrules.yaml). The rule model, validation and edits are
// the pure engine in src/core/push/; here they are stored (one document per user, the push_rules
// stream), cached, and served.

import { deleteRule, findRule, isPushRuleKind, mergeRuleSet, putRule, setRuleActions, setRuleEnabled } from '../../core/push/ruleset.js';
import type { PushRuleError, PushRuleResult, StoredUserRules } from '../../core/push/ruleset.js';
import type { PushRule, PushRuleKind, PushRuleSet } from '../../core/push/rules.js';
import { CompiledRuleSet } from '../../core/push/evaluator.js';
import { Errors, type MatrixError } from '../../errors.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { Queryable, TransactionRunner } from '../../storage/database.js';
import type { PushRulesStore } from '../../storage/push-rules-store.js';
import { StreamIdGenerator } from '../../streams/id-generator.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import { LruCache } from '../../util/lru.js';
import { jsonEqual } from '../kernel/events-writer.js';
import type { JsonValue } from '../../core/json.js';

/**
 * The server defaults count as written at position 1 of the push_rules stream, which therefore
 * never stands at 0: a sync from position 0 is an initial sync and gets the user's rules, while an
 * incremental sync gets them only after they changed.
 */
export const DEFAULT_RULES_POSITION = 1;

/** One change to a user's rules, as plain JSON (the writer may be in another process). */
export type PushRuleEdit =
  | { op: 'put'; kind: string; ruleId: string; body: unknown; before?: string | undefined; after?: string | undefined }
  | { op: 'delete'; kind: string; ruleId: string }
  | { op: 'enabled'; kind: string; ruleId: string; enabled: boolean }
  | { op: 'actions'; kind: string; ruleId: string; actions: unknown };

export interface PushRulesWriterApi {
  edit(userId: string, edit: PushRuleEdit): Promise<void>;
}

export function pushRuleMatrixError(error: PushRuleError): MatrixError {
  return Errors.fromCore(error);
}

function unwrap<T>(result: PushRuleResult<T>): T {
  if (!result.ok) throw pushRuleMatrixError(result.error);
  return result.value;
}

function parseStored(json: string | undefined): StoredUserRules {
  return json === undefined ? {} : (JSON.parse(json) as StoredUserRules);
}

export class PushRulesWriter implements PushRulesWriterApi {
  private readonly queue = new KeyedQueue();

  private constructor(
    private readonly transactions: TransactionRunner,
    private readonly store: PushRulesStore,
    private readonly publisher: StreamPublisher,
  ) {}

  static async create(deps: {
    transactions: TransactionRunner;
    store: PushRulesStore;
    bus: ReplicationBus;
    instanceName: string;
  }): Promise<PushRulesWriter> {
    const ids = new StreamIdGenerator(Math.max(DEFAULT_RULES_POSITION, await deps.store.maxStreamId()));
    return new PushRulesWriter(deps.transactions, deps.store, new StreamPublisher('push_rules', ids, deps.bus, deps.instanceName));
  }

  get currentPosition(): number {
    return this.publisher.current;
  }

  edit(userId: string, edit: PushRuleEdit): Promise<void> {
    return this.queue.run(userId, async () => {
      const row = await this.store.get(userId);
      const current = parseStored(row?.rules_json);
      const next = unwrap(applyEdit(current, edit));
      // Adding the same rule twice, or setting what is already set, changes nothing.
      if (jsonEqual(current as unknown as JsonValue, next as unknown as JsonValue)) return;
      await this.publisher.write(1, async ([position]) => {
        await this.transactions.transaction((tx) => this.store.put(tx, userId, JSON.stringify(next), position!));
        return { value: undefined, rows: [{ stream: 'push_rules', userId }] };
      });
    });
  }
}

function applyEdit(stored: StoredUserRules, edit: PushRuleEdit): PushRuleResult<StoredUserRules> {
  switch (edit.op) {
    case 'put':
      return putRule(stored, edit.kind, edit.ruleId, edit.body, { before: edit.before, after: edit.after });
    case 'delete':
      return deleteRule(stored, edit.kind, edit.ruleId);
    case 'enabled':
      return setRuleEnabled(stored, edit.kind, edit.ruleId, edit.enabled);
    case 'actions':
      return setRuleActions(stored, edit.kind, edit.ruleId, edit.actions);
  }
}

/**
 * Users' rules as stored, merged with the defaults, and compiled for evaluation; cached per user
 * and dropped when the push_rules stream says they changed.
 */
export class PushRulesReader {
  private readonly stored = new LruCache<string, StoredUserRules>(50_000);
  private readonly compiled = new LruCache<string, CompiledRuleSet>(50_000);
  /** Bumped by every invalidation, so a load that raced with one is not cached. */
  private epoch = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: PushRulesStore,
    bus: ReplicationBus,
  ) {
    this.unsubscribe = bus.subscribe((update) => {
      if (update.stream !== 'push_rules') return;
      for (const row of update.rows) {
        if (row.stream !== 'push_rules') continue;
        this.epoch++;
        this.stored.delete(row.userId);
        this.compiled.delete(row.userId);
      }
    });
  }

  async storedRules(userId: string): Promise<StoredUserRules> {
    const cached = this.stored.get(userId);
    if (cached) return cached;
    const epoch = this.epoch;
    const rules = parseStored((await this.store.get(userId))?.rules_json);
    if (epoch === this.epoch) this.stored.set(userId, rules);
    return rules;
  }

  /** The full rule set, as `GET /pushrules/` returns it under `global`. */
  async ruleSet(userId: string): Promise<PushRuleSet> {
    return mergeRuleSet(userId, await this.storedRules(userId));
  }

  /** The position of the user's last change (the defaults' position if they never changed any). */
  async changedAt(userId: string): Promise<number> {
    return Number((await this.store.get(userId))?.stream_id ?? DEFAULT_RULES_POSITION);
  }

  /** Compiled rule sets of many users at once (the push-actions side effect), read through `db`. */
  async compiledFor(userIds: readonly string[], db: Queryable): Promise<Map<string, CompiledRuleSet>> {
    const out = new Map<string, CompiledRuleSet>();
    const missing: string[] = [];
    for (const userId of userIds) {
      const compiled = this.compiled.get(userId);
      if (compiled) out.set(userId, compiled);
      else missing.push(userId);
    }
    if (missing.length === 0) return out;
    const epoch = this.epoch;
    const documents = await this.store.getMany(missing, db);
    for (const userId of missing) {
      const compiled = new CompiledRuleSet(mergeRuleSet(userId, parseStored(documents.get(userId))));
      if (epoch === this.epoch) this.compiled.set(userId, compiled);
      out.set(userId, compiled);
    }
    return out;
  }

  close(): void {
    this.unsubscribe();
  }
}

/** The push-rules endpoints. */
export class PushRulesHandler {
  constructor(
    private readonly reader: PushRulesReader,
    private readonly writer: PushRulesWriterApi,
  ) {}

  /** `GET /pushrules/`. */
  async all(userId: string): Promise<{ global: PushRuleSet['global'] }> {
    return this.reader.ruleSet(userId);
  }

  /** `GET /pushrules/global/{kind}/`. */
  async ofKind(userId: string, kind: string): Promise<PushRule[]> {
    return (await this.reader.ruleSet(userId)).global[checkedKind(kind)];
  }

  /** `GET /pushrules/global/{kind}/{ruleId}`. */
  async rule(userId: string, kind: string, ruleId: string): Promise<PushRule> {
    const rule = findRule(await this.reader.ruleSet(userId), checkedKind(kind), ruleId);
    if (!rule) throw Errors.notFound('Unknown push rule');
    return rule;
  }

  edit(userId: string, edit: PushRuleEdit): Promise<void> {
    return this.writer.edit(userId, edit);
  }
}

function checkedKind(kind: string): PushRuleKind {
  if (!isPushRuleKind(kind)) throw Errors.invalidParam(`Unknown push rule kind: ${kind}`);
  return kind;
}
