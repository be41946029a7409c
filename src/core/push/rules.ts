// The push rule model of the client-server API (spec: client-server API, §Push Rules): the
// kinds, a rule, its conditions and actions, and a user's rule set. Shared by the defaults, the
// rule-set edits and the evaluator.

import type { JsonObject } from '../json.js';

export const PUSH_RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

/** `"notify"` (and the historical `"dont_notify"`, `"coalesce"`) or `{set_tweak, value?}`. */
export type PushAction = string | JsonObject;

/** A condition as stored and served. Unknown kinds are kept verbatim (and never match). */
export interface PushCondition extends JsonObject {
  kind: string;
}

/** A push rule in the client-server format. */
export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  /** `override` and `underride` rules only. */
  conditions?: PushCondition[];
  /** `content` rules only. */
  pattern?: string;
  actions: PushAction[];
}

/** The body of `GET /pushrules/` and the content of `m.push_rules`. */
export interface PushRuleSet {
  global: Record<PushRuleKind, PushRule[]>;
}
