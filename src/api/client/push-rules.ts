// Push rules (S:data/api/client-server/pushrules.yaml). Reads on any worker; writes on the
// push_rules writer. Only the `global` scope exists; other scopes fall through to 404
// M_UNRECOGNIZED like any unknown path.
//
// `GET /pushrules/` is served with and without the trailing slash: matrix-js-sdk asks for it with
// the slash (as the spec writes it), other clients without. Synapse also answers
// `GET /pushrules/global/{kind}/` with the rules of one kind; so do we.
//
// Rule bodies are checked by the push rule engine (src/core/push/ruleset.ts), whose errors follow
// Synapse's; the routes take them as JSON objects.

import { parseEnabledBody } from '../../core/push/ruleset.js';
import { pushRuleMatrixError } from '../../handlers/ephemeral/push-rules.js';
import { jsonObject } from '../../errors.js';
import { stringParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

const RULE = '/pushrules/global/{kind}/{ruleId}';

/** GET on any worker. */
const read = { method: 'GET', resource: 'client', servedBy: 'any', auth: 'guest' } as const;
/** PUT and DELETE on the push_rules writer. */
const write = { resource: 'client', servedBy: 'writer:push_rules', auth: 'guest' } as const;

export const pushRulesRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/pushrules/ (and without the slash)
  defineRoute({
    ...read,
    name: 'client.push_rules.all',
    paths: clientPaths('/pushrules/'),
    handle: async ({ requester }, s) => ({ body: await s.pushRules.all(requester.userId) }),
  }),
  defineRoute({
    ...read,
    name: 'client.push_rules.all_no_slash',
    paths: clientPaths('/pushrules'),
    handle: async ({ requester }, s) => ({ body: await s.pushRules.all(requester.userId) }),
  }),

  // GET /_matrix/client/v3/pushrules/global/
  defineRoute({
    ...read,
    name: 'client.push_rules.global',
    paths: clientPaths('/pushrules/global/'),
    handle: async ({ requester }, s) => ({ body: (await s.pushRules.all(requester.userId)).global }),
  }),

  // GET /_matrix/client/v3/pushrules/global/{kind}/
  defineRoute({
    ...read,
    name: 'client.push_rules.kind',
    paths: clientPaths('/pushrules/global/{kind}/'),
    handle: async ({ requester, params }, s) => ({ body: await s.pushRules.ofKind(requester.userId, params.kind) }),
  }),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  defineRoute({
    ...read,
    name: 'client.push_rules.get',
    paths: clientPaths(RULE),
    handle: async ({ requester, params }, s) => ({ body: await s.pushRules.rule(requester.userId, params.kind, params.ruleId) }),
  }),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
  defineRoute({
    ...read,
    name: 'client.push_rules.enabled.get',
    paths: clientPaths(`${RULE}/enabled`),
    handle: async ({ requester, params }, s) => ({
      body: { enabled: (await s.pushRules.rule(requester.userId, params.kind, params.ruleId)).enabled },
    }),
  }),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
  defineRoute({
    ...read,
    name: 'client.push_rules.actions.get',
    paths: clientPaths(`${RULE}/actions`),
    handle: async ({ requester, params }, s) => ({
      body: { actions: (await s.pushRules.rule(requester.userId, params.kind, params.ruleId)).actions },
    }),
  }),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  defineRoute({
    ...write,
    name: 'client.push_rules.put',
    method: 'PUT',
    paths: clientPaths(RULE),
    // The rule (`actions`, `conditions` or `pattern`), checked by the rule engine.
    body: jsonObject,
    handle: async ({ requester, params, query, body }, s) => {
      await s.pushRules.edit(requester.userId, {
        op: 'put',
        kind: params.kind,
        ruleId: params.ruleId,
        body,
        before: stringParam(query, 'before'),
        after: stringParam(query, 'after'),
      });
      return { body: {} };
    },
  }),

  // DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  defineRoute({
    ...write,
    name: 'client.push_rules.delete',
    method: 'DELETE',
    paths: clientPaths(RULE),
    handle: async ({ requester, params }, s) => {
      await s.pushRules.edit(requester.userId, { op: 'delete', kind: params.kind, ruleId: params.ruleId });
      return { body: {} };
    },
  }),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
  defineRoute({
    ...write,
    name: 'client.push_rules.enabled.put',
    method: 'PUT',
    paths: clientPaths(`${RULE}/enabled`),
    // `{enabled: <boolean>}`, read by the rule engine (`parseEnabledBody`).
    body: jsonObject,
    handle: async ({ requester, params, body }, s) => {
      const enabled = parseEnabledBody(body);
      if (!enabled.ok) throw pushRuleMatrixError(enabled.error);
      await s.pushRules.edit(requester.userId, { op: 'enabled', kind: params.kind, ruleId: params.ruleId, enabled: enabled.value });
      return { body: {} };
    },
  }),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
  defineRoute({
    ...write,
    name: 'client.push_rules.actions.put',
    method: 'PUT',
    paths: clientPaths(`${RULE}/actions`),
    // `{actions: [...]}`: the actions are checked by the rule engine.
    body: jsonObject,
    handle: async ({ requester, params, body }, s) => {
      await s.pushRules.edit(requester.userId, { op: 'actions', kind: params.kind, ruleId: params.ruleId, actions: body.actions });
      return { body: {} };
    },
  }),
];
