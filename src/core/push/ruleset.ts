// A user's push rules: the model, the `GET /pushrules/` shape, and the edits the push-rules API
// makes (`S:data/api/client-server/pushrules.yaml`). Pure functions over plain data; storage and
// HTTP live elsewhere.
//
// What is stored per user:
//   - the user-defined rules of each kind, most important first;
//   - changes to server-default rules, which may only touch `enabled` and `actions`.
// Everything else (the defaults themselves, their order) comes from `defaultRules`.
//
// Order in the merged rule set (and so in evaluation): within each kind user rules come before
// the server defaults, except that `.m.rule.master` always comes first of all.
//
// Error codes. The spec fixes only the status codes; we answer:
//   - 400 M_INVALID_PARAM for a bad kind, rule id or `before`/`after` value (path and query);
//   - 400 M_BAD_JSON for a body that is not the shape the kind needs (missing `actions`, unknown
//     action, content rule without `pattern`, condition without `kind`…);
//   - 400 M_UNKNOWN when the `before`/`after` rule does not exist (the spec's own example);
//   - 404 M_NOT_FOUND when changing or deleting a rule that does not exist.

import { isJsonObject } from '../json.js';
import { defaultRuleKind, MASTER_RULE_ID, sharedDefaultRules } from './default-rules.js';
import { PUSH_RULE_KINDS, type PushAction, type PushCondition, type PushRule, type PushRuleKind, type PushRuleSet } from './rules.js';

/** A user-defined rule as stored (its kind is where it is stored). */
export interface StoredUserRule {
  rule_id: string;
  enabled: boolean;
  /** `override`/`underride`; absent means no conditions (the rule matches every event). */
  conditions?: PushCondition[];
  /** `content` rules. */
  pattern?: string;
  actions: PushAction[];
}

/** A user's change to a server-default rule. */
export interface DefaultRuleChange {
  enabled?: boolean;
  actions?: PushAction[];
}

export interface StoredUserRules {
  /** User-defined rules per kind, most important first. */
  rules?: Partial<Record<PushRuleKind, readonly StoredUserRule[]>>;
  /** Changes to server-default rules, by rule id (default rule ids are unique across kinds). */
  defaults?: Readonly<Record<string, DefaultRuleChange>>;
}

export type PushRuleErrcode = 'M_INVALID_PARAM' | 'M_BAD_JSON' | 'M_UNKNOWN' | 'M_NOT_FOUND';

/** Why a push-rules request cannot be done, with what the API should answer. */
export class PushRuleError extends Error {
  constructor(
    message: string,
    readonly errcode: PushRuleErrcode,
    readonly status: 400 | 404 = errcode === 'M_NOT_FOUND' ? 404 : 400,
  ) {
    super(message);
    this.name = 'PushRuleError';
  }
}

export type PushRuleResult<T> = { ok: true; value: T } | { ok: false; error: PushRuleError };

const ok = <T>(value: T): PushRuleResult<T> => ({ ok: true, value });
const fail = <T>(message: string, errcode: PushRuleErrcode): PushRuleResult<T> => ({
  ok: false,
  error: new PushRuleError(message, errcode),
});

export function isPushRuleKind(kind: string): kind is PushRuleKind {
  return (PUSH_RULE_KINDS as readonly string[]).includes(kind);
}

// ---------------------------------------------------------------------------------------------
// The merged rule set

/** The user-defined rule `stored` of `kind` in client format. */
export function userRuleToClient(kind: PushRuleKind, stored: StoredUserRule): PushRule {
  const out: PushRule = { rule_id: stored.rule_id, default: false, enabled: stored.enabled, actions: [...stored.actions] };
  if (kind === 'override' || kind === 'underride') out.conditions = [...(stored.conditions ?? [])];
  else if (kind === 'content' && stored.pattern !== undefined) out.pattern = stored.pattern;
  return out;
}

/**
 * The user's full rule set as `GET /pushrules/` returns it: per kind, the user's rules then the
 * server defaults (with the user's changes to them applied), and `.m.rule.master` first of all.
 *
 * Treat the result as read-only: unchanged default rules are shared, frozen objects (which is what
 * lets the evaluator compile them once for all users). The arrays themselves are fresh.
 */
export function mergeRuleSet(userId: string, stored: StoredUserRules = {}): PushRuleSet {
  const defaults = sharedDefaultRules(userId);
  const changes = stored.defaults ?? {};
  const global = {} as Record<PushRuleKind, PushRule[]>;
  for (const kind of PUSH_RULE_KINDS) {
    const serverRules = defaults.global[kind].map((r) => {
      const change = changes[r.rule_id];
      if (change === undefined) return r;
      return {
        ...r,
        ...(change.enabled !== undefined ? { enabled: change.enabled } : {}),
        ...(change.actions !== undefined ? { actions: [...change.actions] } : {}),
      };
    });
    const userRules = (stored.rules?.[kind] ?? []).map((r) => userRuleToClient(kind, r));
    if (kind === 'override') {
      const master = serverRules.filter((r) => r.rule_id === MASTER_RULE_ID);
      const rest = serverRules.filter((r) => r.rule_id !== MASTER_RULE_ID);
      global[kind] = [...master, ...userRules, ...rest];
    } else {
      global[kind] = [...userRules, ...serverRules];
    }
  }
  return { global };
}

/** A rule of a merged rule set, for `GET /pushrules/global/{kind}/{ruleId}`. */
export function findRule(ruleSet: PushRuleSet, kind: PushRuleKind, ruleId: string): PushRule | undefined {
  return ruleSet.global[kind].find((r) => r.rule_id === ruleId);
}

// ---------------------------------------------------------------------------------------------
// Validation

/** Checks an `actions` array: strings `notify`/`dont_notify`/`coalesce`, or `{set_tweak: string}`. */
export function validateActions(value: unknown): PushRuleResult<PushAction[]> {
  if (!Array.isArray(value)) return fail("'actions' must be an array", 'M_BAD_JSON');
  for (const action of value as unknown[]) {
    if (typeof action === 'string') {
      // The historical actions are accepted and stored, and ignored when evaluating.
      if (action === 'notify' || action === 'dont_notify' || action === 'coalesce') continue;
      return fail(`Unrecognised action: ${action}`, 'M_BAD_JSON');
    }
    if (isJsonObject(action) && typeof action['set_tweak'] === 'string') continue;
    return fail(`Unrecognised action: ${JSON.stringify(action)}`, 'M_BAD_JSON');
  }
  return ok(value as PushAction[]);
}

/** Checks a rule id taken from the path for a new or updated user rule. */
export function validateRuleId(ruleId: string): PushRuleResult<string> {
  if (ruleId.length === 0) return fail('rule_id may not be empty', 'M_INVALID_PARAM');
  if (ruleId.startsWith('.')) return fail("cannot add new rule_ids that start with '.'", 'M_INVALID_PARAM');
  if (ruleId.includes('/') || ruleId.includes('\\')) {
    return fail('rule_id may not contain slashes or backslashes', 'M_INVALID_PARAM');
  }
  return ok(ruleId);
}

function validateConditions(value: unknown): PushRuleResult<PushCondition[]> {
  if (!Array.isArray(value)) return fail("'conditions' must be an array", 'M_BAD_JSON');
  for (const condition of value as unknown[]) {
    if (!isJsonObject(condition)) return fail('Each condition must be an object', 'M_BAD_JSON');
    if (typeof condition['kind'] !== 'string') return fail("Condition without 'kind'", 'M_BAD_JSON');
    // A condition of a known kind with bad parameters is stored as sent and never matches, like
    // an unknown kind: the spec defines no validation for them and Synapse stores them.
  }
  return ok(value as PushCondition[]);
}

/**
 * Validates `PUT /pushrules/global/{kind}/{ruleId}` (a new or replaced user rule) and returns the
 * rule to store, enabled.
 *
 * `room` and `sender` rules take their meaning from the rule id (the room id / the sender's user
 * id); any `conditions` or `pattern` in the body is ignored. The id is not checked to be a room or
 * user id: SyTest and clients use aliases and other strings, and such a rule simply never matches.
 * `override`/`underride` rules without `conditions` match every event (the spec makes the field
 * optional; Synapse requires it).
 */
export function validateNewRule(kind: string, ruleId: string, body: unknown): PushRuleResult<StoredUserRule> {
  if (!isPushRuleKind(kind)) return fail(`Unknown push rule kind: ${kind}`, 'M_INVALID_PARAM');
  const id = validateRuleId(ruleId);
  if (!id.ok) return id;
  if (!isJsonObject(body)) return fail('The body must be a JSON object', 'M_BAD_JSON');
  const obj = body;
  if (!('actions' in obj)) return fail("No 'actions' found", 'M_BAD_JSON');
  const actions = validateActions(obj['actions']);
  if (!actions.ok) return actions;

  const rule: StoredUserRule = { rule_id: ruleId, enabled: true, actions: actions.value };
  switch (kind) {
    case 'override':
    case 'underride': {
      if (obj['conditions'] !== undefined) {
        const conditions = validateConditions(obj['conditions']);
        if (!conditions.ok) return conditions;
        rule.conditions = conditions.value;
      } else {
        rule.conditions = [];
      }
      break;
    }
    case 'content': {
      const pattern = obj['pattern'];
      if (pattern === undefined) return fail("Content rule missing 'pattern'", 'M_BAD_JSON');
      if (typeof pattern !== 'string') return fail("'pattern' must be a string", 'M_BAD_JSON');
      rule.pattern = pattern;
      break;
    }
    case 'room':
    case 'sender':
      break;
  }
  return ok(rule);
}

/** The body of `PUT …/enabled`: `{"enabled": boolean}`. */
export function parseEnabledBody(body: unknown): PushRuleResult<boolean> {
  if (isJsonObject(body) && typeof body['enabled'] === 'boolean') {
    return ok(body['enabled']);
  }
  return fail("'enabled' must be a boolean", 'M_BAD_JSON');
}

/** The body of `PUT …/actions`: `{"actions": [...]}`. */
export function parseActionsBody(body: unknown): PushRuleResult<PushAction[]> {
  if (!isJsonObject(body) || !('actions' in body)) {
    return fail("No 'actions' found", 'M_BAD_JSON');
  }
  return validateActions(body['actions']);
}

// ---------------------------------------------------------------------------------------------
// Edits

export interface RuleAnchors {
  /** Make the rule the next more important rule than this user rule. Wins over `after`. */
  before?: string | undefined;
  /** Make the rule the next less important rule than this user rule. */
  after?: string | undefined;
}

/**
 * Puts `rule` into `list` (one kind's user rules, most important first), returning a new list:
 *   - with `before`/`after`: next to that rule (moving the rule if it already existed);
 *   - otherwise, if a rule with the same id exists: replaced in place (so adding the same rule
 *     twice is idempotent);
 *   - otherwise: first, as the most important user rule.
 * Replacing keeps the existing rule's `enabled`, as Synapse does. Anchors must be user rules of
 * the same list: a server-default id (`.`-prefixed) is 400 M_INVALID_PARAM, an unknown id is
 * 400 M_UNKNOWN.
 */
export function insertRule(
  list: readonly StoredUserRule[],
  rule: StoredUserRule,
  anchors: RuleAnchors = {},
): PushRuleResult<StoredUserRule[]> {
  const existingIndex = list.findIndex((r) => r.rule_id === rule.rule_id);
  const existing = existingIndex === -1 ? undefined : list[existingIndex];
  const toInsert: StoredUserRule = existing ? { ...rule, enabled: existing.enabled } : rule;

  const anchorId = anchors.before || anchors.after || undefined;
  if (anchorId === undefined) {
    if (existing) return ok(list.map((r, i) => (i === existingIndex ? toInsert : r)));
    return ok([toInsert, ...list]);
  }
  if (anchorId.startsWith('.')) {
    return fail(`cannot add a rule relative to a server-default rule: ${anchorId}`, 'M_INVALID_PARAM');
  }
  if (anchorId === rule.rule_id) {
    if (!existing) return fail(`before/after rule not found: ${anchorId}`, 'M_UNKNOWN');
    return ok(list.map((r, i) => (i === existingIndex ? toInsert : r)));
  }
  const without = list.filter((r) => r.rule_id !== rule.rule_id);
  const anchorIndex = without.findIndex((r) => r.rule_id === anchorId);
  if (anchorIndex === -1) return fail(`before/after rule not found: ${anchorId}`, 'M_UNKNOWN');
  const at = anchors.before ? anchorIndex : anchorIndex + 1;
  return ok([...without.slice(0, at), toInsert, ...without.slice(at)]);
}

function withKind(stored: StoredUserRules, kind: PushRuleKind, list: StoredUserRule[]): StoredUserRules {
  return { ...stored, rules: { ...(stored.rules ?? {}), [kind]: list } };
}

/** `PUT /pushrules/global/{kind}/{ruleId}`: validate the body and add or replace the rule. */
export function putRule(
  stored: StoredUserRules,
  kind: string,
  ruleId: string,
  body: unknown,
  anchors: RuleAnchors = {},
): PushRuleResult<StoredUserRules> {
  const rule = validateNewRule(kind, ruleId, body);
  if (!rule.ok) return rule;
  const k = kind as PushRuleKind;
  const list = insertRule(stored.rules?.[k] ?? [], rule.value, anchors);
  if (!list.ok) return list;
  return ok(withKind(stored, k, list.value));
}

/** `DELETE /pushrules/global/{kind}/{ruleId}`. Server-default rules cannot be deleted (404). */
export function deleteRule(stored: StoredUserRules, kind: string, ruleId: string): PushRuleResult<StoredUserRules> {
  if (!isPushRuleKind(kind)) return fail(`Unknown push rule kind: ${kind}`, 'M_INVALID_PARAM');
  const list = stored.rules?.[kind] ?? [];
  if (!list.some((r) => r.rule_id === ruleId)) return fail('Unknown push rule', 'M_NOT_FOUND');
  return ok(
    withKind(
      stored,
      kind,
      list.filter((r) => r.rule_id !== ruleId),
    ),
  );
}

function changeRule(stored: StoredUserRules, kind: string, ruleId: string, change: DefaultRuleChange): PushRuleResult<StoredUserRules> {
  if (!isPushRuleKind(kind)) return fail(`Unknown push rule kind: ${kind}`, 'M_INVALID_PARAM');
  if (ruleId.startsWith('.')) {
    if (defaultRuleKind(ruleId) !== kind) return fail('Unknown push rule', 'M_NOT_FOUND');
    const previous = stored.defaults?.[ruleId] ?? {};
    return ok({ ...stored, defaults: { ...(stored.defaults ?? {}), [ruleId]: { ...previous, ...change } } });
  }
  const list = stored.rules?.[kind] ?? [];
  const index = list.findIndex((r) => r.rule_id === ruleId);
  if (index === -1) return fail('Unknown push rule', 'M_NOT_FOUND');
  return ok(
    withKind(
      stored,
      kind,
      list.map((r, i) => (i === index ? { ...r, ...change } : r)),
    ),
  );
}

/** `PUT …/{ruleId}/enabled`, for user rules and server defaults alike. */
export function setRuleEnabled(stored: StoredUserRules, kind: string, ruleId: string, enabled: boolean): PushRuleResult<StoredUserRules> {
  return changeRule(stored, kind, ruleId, { enabled });
}

/** `PUT …/{ruleId}/actions`, for user rules and server defaults alike. Validates the actions. */
export function setRuleActions(stored: StoredUserRules, kind: string, ruleId: string, actions: unknown): PushRuleResult<StoredUserRules> {
  const valid = validateActions(actions);
  if (!valid.ok) return valid;
  return changeRule(stored, kind, ruleId, { actions: valid.value });
}
