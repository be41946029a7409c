// Push rule evaluation (`S:content/client-server-api/modules/push.md` §Push Rules, §Conditions):
// which actions, if any, a user's rules give for an event.
//
// It runs for every local member of a room on every new event, so work is split three ways:
//   - per rule set (`compileRuleSet`): disabled rules are dropped, conditions become closures,
//     globs are compiled (and shared through the glob cache), `.`-escaped key paths are parsed,
//     historical actions are stripped. Callers keep the compiled set until the user's rules change.
//   - per event (`PreparedEvent`, kept in a WeakMap keyed by the event object): looked-up values
//     and lower-cased strings (`content.body` above all) are computed once and shared by all users.
//   - per user: only the conditions themselves.
//
// Semantics (spec, and Synapse where the spec is silent):
//   - kinds run override → content → room → sender → underride; the first enabled rule whose
//     conditions all hold wins, and its actions are returned with `dont_notify`/`coalesce` removed
//     (so `[]` means "matched, don't notify"); no match gives `undefined`;
//   - events the user sent never notify them (`undefined`);
//   - the legacy rules `.m.rule.contains_display_name`, `.m.rule.roomnotif` and
//     `.m.rule.contains_user_name` are skipped when the event content has `m.mentions`;
//   - unknown conditions, and known ones with missing or ill-typed parameters, never match.

import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import type { RoomEvent } from '../events.js';
import type { PowerLevels } from '../power-levels.js';
import { LEGACY_MENTION_RULE_IDS } from './default-rules.js';
import { globMatcher, literalMatcher, wordsOf, type GlobMatcher } from './glob.js';
import { PUSH_RULE_KINDS, type PushAction, type PushCondition, type PushRule, type PushRuleSet } from './rules.js';

/** What the conditions need to know besides the event. */
export interface PushContext {
  /** The user whose rules are evaluated. */
  userId: string;
  /**
   * The user's display name in the room, for `contains_display_name`. When absent and the event is
   * the user's own membership event, its `content.displayname` is used (an invitee has no name in
   * the room yet).
   */
  userDisplayName?: string | null | undefined;
  /** Joined members of the room, for `room_member_count`. */
  roomMemberCount: number;
  /** The room's power levels, for `sender_notification_permission`. */
  powerLevels: PowerLevels;
  /**
   * The sender's power level; defaults to `powerLevels.userLevel(event.sender)`. `null` when it is
   * unknown (an outlier), which makes `sender_notification_permission` fail.
   */
  senderPowerLevel?: number | null | undefined;
  /** Push features of the room version, for `room_version_supports` (MSC3931). Usually none. */
  roomVersionFeatures?: readonly string[] | undefined;
}

// ---------------------------------------------------------------------------------------------
// Dot-separated property paths (`S:content/appendices.md` §Dot-separated property paths)

/**
 * Splits a key such as `content.m\.relates_to.rel_type` into property names. `\.` is a literal
 * dot, `\\` a literal backslash; any other backslash is kept as it is.
 */
export function parseDotPath(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const ch = key[i]!;
    if (ch === '\\') {
      const nextCh = key[i + 1];
      if (nextCh === '.' || nextCh === '\\') {
        current += nextCh;
        i++;
      } else {
        current += ch;
      }
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** A top-level property of the event as a client would see it. */
function topLevel(event: RoomEvent, name: string): JsonValue | undefined {
  switch (name) {
    case 'type':
      return event.type;
    case 'sender':
      return event.sender;
    case 'state_key':
      return event.stateKey;
    case 'room_id':
      return event.roomId;
    case 'event_id':
      return event.eventId;
    case 'content':
      return event.content;
    default:
      return Object.hasOwn(event.pdu, name) ? event.pdu[name] : undefined;
  }
}

/** The value at `path` in `event`, walking objects only (never into arrays). */
export function lookupPath(event: RoomEvent, path: readonly string[]): JsonValue | undefined {
  if (path.length === 0) return undefined;
  let value = topLevel(event, path[0]!);
  for (let i = 1; i < path.length; i++) {
    if (!isJsonObject(value)) return undefined;
    const obj = value;
    const name = path[i]!;
    if (!Object.hasOwn(obj, name)) return undefined;
    value = obj[name];
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Per-event cache

const MISSING = Symbol('missing');

/** Values of one event, looked up once and shared by every user's evaluation. */
class PreparedEvent {
  readonly hasMentions: boolean;
  private readonly values = new Map<string, JsonValue | typeof MISSING>();
  private readonly lowered = new Map<string, string | typeof MISSING>();

  /** Results of tests that depend on the event alone, by test. */
  private readonly results = new Map<object, boolean>();
  private bodyWordSet: Set<string> | undefined;

  constructor(readonly event: RoomEvent) {
    this.hasMentions = Object.hasOwn(event.content, 'm.mentions');
  }

  /** The words of the lower-cased `content.body` (empty if it is not a string). */
  bodyWords(): Set<string> {
    if (this.bodyWordSet === undefined) this.bodyWordSet = wordsOf(this.lowerString(BODY_KEY, BODY_PATH) ?? '');
    return this.bodyWordSet;
  }

  /** Whether the lower-cased `content.body` matches a word-mode matcher. */
  bodyMatches(matcher: GlobMatcher): boolean {
    const body = this.lowerString(BODY_KEY, BODY_PATH);
    if (body === undefined) return false;
    if (matcher.requiredWord !== undefined && !this.bodyWords().has(matcher.requiredWord)) return false;
    return matcher.test(body);
  }

  /** `compute()`, remembered under `id` for this event. */
  once(id: object, compute: () => boolean): boolean {
    let result = this.results.get(id);
    if (result === undefined) {
      result = compute();
      this.results.set(id, result);
    }
    return result;
  }

  value(key: string, path: readonly string[]): JsonValue | undefined {
    let v = this.values.get(key);
    if (v === undefined) {
      const found = lookupPath(this.event, path);
      v = found === undefined ? MISSING : found; // not `??`: null is a value
      this.values.set(key, v);
    }
    return v === MISSING ? undefined : v;
  }

  /** The lower-cased value at `key` if it is a string. */
  lowerString(key: string, path: readonly string[]): string | undefined {
    let v = this.lowered.get(key);
    if (v === undefined) {
      const raw = this.value(key, path);
      v = typeof raw === 'string' ? raw.toLowerCase() : MISSING;
      this.lowered.set(key, v);
    }
    return v === MISSING ? undefined : v;
  }
}

// Keyed by the event object: evaluate every user against the same `RoomEvent` to share the work.
const prepared = new WeakMap<RoomEvent, PreparedEvent>();

function prepare(event: RoomEvent): PreparedEvent {
  let p = prepared.get(event);
  if (p === undefined) {
    p = new PreparedEvent(event);
    prepared.set(event, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Conditions

type Test = (p: PreparedEvent, ctx: PushContext) => boolean;

const NEVER: Test = () => false;
const BODY_KEY = 'content.body';
const BODY_PATH = ['content', 'body'] as const;
const MEMBER_COUNT = /^(==|<=|>=|<|>)?([0-9]+)$/;

function isScalar(value: JsonValue | undefined): value is string | number | boolean | null {
  return (
    value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value))
  );
}

function displayNameFor(p: PreparedEvent, ctx: PushContext): string | undefined {
  if (ctx.userDisplayName) return ctx.userDisplayName;
  const event = p.event;
  if (event.type === 'm.room.member' && event.stateKey === ctx.userId) {
    const name = event.content['displayname'];
    if (typeof name === 'string' && name !== '') return name;
  }
  return undefined;
}

function compileEventMatch(key: string, pattern: string): Test {
  const path = parseDotPath(key);
  const word = key === BODY_KEY;
  const matcher = globMatcher(pattern, word ? 'word' : 'whole');
  if (!word) {
    return (p) => {
      const s = p.lowerString(key, path);
      return s !== undefined && matcher.test(s);
    };
  }
  // Searching the body is the costly part, and for the shared default rules (`@room`) the same
  // test runs for every user: do it once per event.
  const test: Test = (p) => p.once(test, () => p.bodyMatches(matcher));
  return test;
}

/** Compiles one condition; malformed or unknown conditions become `NEVER`. */
export function compileCondition(condition: PushCondition): Test {
  const key = condition['key'];
  switch (condition.kind) {
    case 'event_match': {
      const pattern = condition['pattern'];
      if (typeof key !== 'string' || typeof pattern !== 'string') return NEVER;
      return compileEventMatch(key, pattern);
    }
    case 'event_property_is': {
      const value = condition['value'];
      if (typeof key !== 'string' || !isScalar(value)) return NEVER;
      const path = parseDotPath(key);
      return (p) => p.value(key, path) === value;
    }
    case 'event_property_contains': {
      const value = condition['value'];
      if (typeof key !== 'string' || !isScalar(value)) return NEVER;
      const path = parseDotPath(key);
      return (p) => {
        const haystack = p.value(key, path);
        return Array.isArray(haystack) && haystack.includes(value);
      };
    }
    case 'contains_display_name':
      return (p, ctx) => {
        const name = displayNameFor(p, ctx);
        if (name === undefined) return false; // an empty name would match everything
        return p.bodyMatches(literalMatcher(name, 'word'));
      };
    case 'room_member_count': {
      const is = condition['is'];
      const m = typeof is === 'string' ? MEMBER_COUNT.exec(is) : null;
      if (m === null) return NEVER;
      const n = Number(m[2]);
      switch (m[1]) {
        case '<':
          return (_p, ctx) => ctx.roomMemberCount < n;
        case '>':
          return (_p, ctx) => ctx.roomMemberCount > n;
        case '<=':
          return (_p, ctx) => ctx.roomMemberCount <= n;
        case '>=':
          return (_p, ctx) => ctx.roomMemberCount >= n;
        default:
          return (_p, ctx) => ctx.roomMemberCount === n;
      }
    }
    case 'sender_notification_permission': {
      if (typeof key !== 'string') return NEVER;
      return (p, ctx) => {
        const level = ctx.senderPowerLevel === undefined ? ctx.powerLevels.userLevel(p.event.sender) : ctx.senderPowerLevel;
        return level !== null && level >= ctx.powerLevels.notificationLevel(key);
      };
    }
    case 'room_version_supports': {
      const feature = condition['feature'];
      if (typeof feature !== 'string') return NEVER;
      return (_p, ctx) => ctx.roomVersionFeatures?.includes(feature) ?? false;
    }
    default:
      return NEVER;
  }
}

// ---------------------------------------------------------------------------------------------
// Rule sets

interface CompiledRule {
  readonly ruleId: string;
  /** Skipped when the event content has `m.mentions`. */
  readonly legacyMention: boolean;
  readonly tests: readonly Test[];
  readonly actions: readonly PushAction[];
}

/** Removes the historical actions, which the spec says to ignore. */
export function effectiveActions(actions: readonly PushAction[]): PushAction[] {
  return actions.filter((a) => a !== 'dont_notify' && a !== 'coalesce');
}

// Compiled rules by rule object. `mergeRuleSet` hands every user the same frozen objects for the
// default rules that do not mention the user, so compiling a thousand users' rule sets compiles
// those once; only frozen rules are cached (a mutable one could change after compiling).
const compiledRules = new WeakMap<PushRule, CompiledRule | null>();

function compileRule(kind: (typeof PUSH_RULE_KINDS)[number], rule: PushRule): CompiledRule | undefined {
  if (!Object.isFrozen(rule)) return buildRule(kind, rule);
  let compiled = compiledRules.get(rule);
  if (compiled === undefined) {
    compiled = buildRule(kind, rule) ?? null;
    compiledRules.set(rule, compiled);
  }
  return compiled ?? undefined;
}

function buildRule(kind: (typeof PUSH_RULE_KINDS)[number], rule: PushRule): CompiledRule | undefined {
  if (!rule.enabled) return undefined;
  let tests: Test[];
  switch (kind) {
    case 'override':
    case 'underride':
      tests = (rule.conditions ?? []).map(compileCondition);
      break;
    case 'content':
      if (typeof rule.pattern !== 'string') return undefined;
      tests = [compileEventMatch(BODY_KEY, rule.pattern)];
      break;
    case 'room': {
      const roomId = rule.rule_id;
      tests = [(p) => p.event.roomId === roomId];
      break;
    }
    case 'sender': {
      const sender = rule.rule_id;
      tests = [(p) => p.event.sender === sender];
      break;
    }
  }
  if (tests.includes(NEVER)) return undefined; // can never match: leave it out
  return {
    ruleId: rule.rule_id,
    legacyMention: rule.default && LEGACY_MENTION_RULE_IDS.has(rule.rule_id),
    tests,
    actions: Object.freeze(effectiveActions(rule.actions)),
  };
}

/** A rule set ready to evaluate; build once per user and rule-set version. */
export class CompiledRuleSet {
  private readonly rules: readonly CompiledRule[];

  constructor(ruleSet: PushRuleSet) {
    const rules: CompiledRule[] = [];
    for (const kind of PUSH_RULE_KINDS) {
      for (const rule of ruleSet.global[kind] ?? []) {
        const compiled = compileRule(kind, rule);
        if (compiled) rules.push(compiled);
      }
    }
    this.rules = rules;
  }

  /** The rules that can match, in evaluation order (for debugging and tests). */
  get ruleIds(): string[] {
    return this.rules.map((r) => r.ruleId);
  }

  /**
   * The actions of the first matching rule (historical actions removed; shared and frozen, do not
   * modify), or `undefined` if none matches or `ctx.userId` sent the event.
   */
  evaluate(event: RoomEvent, ctx: PushContext): readonly PushAction[] | undefined {
    return this.match(event, ctx)?.actions;
  }

  /** Like `evaluate`, also saying which rule matched. */
  match(event: RoomEvent, ctx: PushContext): { ruleId: string; actions: readonly PushAction[] } | undefined {
    if (event.sender === ctx.userId) return undefined;
    const p = prepare(event);
    outer: for (const rule of this.rules) {
      if (rule.legacyMention && p.hasMentions) continue;
      for (const test of rule.tests) if (!test(p, ctx)) continue outer;
      return { ruleId: rule.ruleId, actions: rule.actions };
    }
    return undefined;
  }
}

export function compileRuleSet(ruleSet: PushRuleSet): CompiledRuleSet {
  return new CompiledRuleSet(ruleSet);
}

const compiledSets = new WeakMap<PushRuleSet, CompiledRuleSet>();

/**
 * Evaluates `ruleSet` for `event`. The compiled form is cached per rule-set object, so pass the
 * same object while the rules are unchanged (and a new one after a change).
 */
export function evaluatePushRules(ruleSet: PushRuleSet, event: RoomEvent, ctx: PushContext): readonly PushAction[] | undefined {
  let compiled = compiledSets.get(ruleSet);
  if (compiled === undefined) {
    compiled = new CompiledRuleSet(ruleSet);
    compiledSets.set(ruleSet, compiled);
  }
  return compiled.evaluate(event, ctx);
}

// ---------------------------------------------------------------------------------------------
// Actions

/** Whether the actions notify (`notify` present). */
export function actionsNotify(actions: readonly PushAction[] | undefined): boolean {
  return actions !== undefined && actions.includes('notify');
}

/**
 * Whether the actions highlight: the first `highlight` tweak decides, with no `value` meaning
 * `true`; no such tweak means `false`.
 */
export function actionsHighlight(actions: readonly PushAction[] | undefined): boolean {
  if (actions === undefined) return false;
  for (const a of actions) {
    if (typeof a === 'object' && a['set_tweak'] === 'highlight') return a['value'] === undefined || a['value'] === true;
  }
  return false;
}

/** The `tweaks` object for a push gateway: each `set_tweak` (absent `value` → `true`), last wins. */
export function actionsTweaks(actions: readonly PushAction[] | undefined): JsonObject {
  const tweaks: JsonObject = {};
  for (const a of actions ?? []) {
    if (typeof a === 'object' && typeof a['set_tweak'] === 'string') {
      tweaks[a['set_tweak']] = a['value'] === undefined ? true : a['value'];
    }
  }
  return tweaks;
}
