// Push rules (S:data/api/client-server/pushrules.yaml). Reads on any worker; writes on the
// push_rules writer. Only the `global` scope exists; other scopes fall through to 404
// M_UNRECOGNIZED like any unknown path.
//
// `GET /pushrules/` is served with and without the trailing slash: matrix-js-sdk asks for it with
// the slash (as the spec writes it), other clients without. Synapse also answers
// `GET /pushrules/global/{kind}/` with the rules of one kind; so do we.

import type { JsonObject } from '../../core/json.js';
import { parseEnabledBody } from '../../core/push/ruleset.js';
import { pushRuleMatrixError, type PushRuleEdit } from '../../handlers/ephemeral/push-rules.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';

const RULE = '/pushrules/global/{kind}/{ruleId}';

function edit(name: string, method: 'PUT' | 'DELETE', suffix: string, toEdit: (req: RouteRequest) => PushRuleEdit): RouteDefinition<ApiServices> {
  return defineRoute<ApiServices>({
    name,
    method,
    paths: clientPaths(suffix),
    resource: 'client',
    servedBy: 'writer:push_rules',
    auth: 'user',
    body: method === 'PUT' ? 'json' : 'none',
    handle: async (req, services) => {
      await services.pushRules.edit(requesterOf(req).userId, toEdit(req));
      return { body: {} };
    },
  });
}

function read(name: string, suffix: string, get: (req: RouteRequest, services: ApiServices) => Promise<unknown>): RouteDefinition<ApiServices> {
  return defineRoute<ApiServices>({
    name,
    method: 'GET',
    paths: clientPaths(suffix),
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({ body: await get(req, services) }),
  });
}

export const pushRulesRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/pushrules/ (and without the slash)
  read('client.push_rules.all', '/pushrules/', (req, s) => s.pushRules.all(requesterOf(req).userId)),
  read('client.push_rules.all_no_slash', '/pushrules', (req, s) => s.pushRules.all(requesterOf(req).userId)),

  // GET /_matrix/client/v3/pushrules/global/
  read('client.push_rules.global', '/pushrules/global/', async (req, s) => (await s.pushRules.all(requesterOf(req).userId)).global),

  // GET /_matrix/client/v3/pushrules/global/{kind}/
  read('client.push_rules.kind', '/pushrules/global/{kind}/', (req, s) => s.pushRules.ofKind(requesterOf(req).userId, req.params.kind!)),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  read('client.push_rules.get', RULE, (req, s) => s.pushRules.rule(requesterOf(req).userId, req.params.kind!, req.params.ruleId!)),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
  read('client.push_rules.enabled.get', `${RULE}/enabled`, async (req, s) => ({
    enabled: (await s.pushRules.rule(requesterOf(req).userId, req.params.kind!, req.params.ruleId!)).enabled,
  })),

  // GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
  read('client.push_rules.actions.get', `${RULE}/actions`, async (req, s) => ({
    actions: (await s.pushRules.rule(requesterOf(req).userId, req.params.kind!, req.params.ruleId!)).actions,
  })),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  edit('client.push_rules.put', 'PUT', RULE, (req) => ({
    op: 'put',
    kind: req.params.kind!,
    ruleId: req.params.ruleId!,
    body: req.body,
    before: req.query.get('before') ?? undefined,
    after: req.query.get('after') ?? undefined,
  })),

  // DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
  edit('client.push_rules.delete', 'DELETE', RULE, (req) => ({ op: 'delete', kind: req.params.kind!, ruleId: req.params.ruleId! })),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
  edit('client.push_rules.enabled.put', 'PUT', `${RULE}/enabled`, (req) => {
    const enabled = parseEnabledBody(req.body);
    if (!enabled.ok) throw pushRuleMatrixError(enabled.error);
    return { op: 'enabled', kind: req.params.kind!, ruleId: req.params.ruleId!, enabled: enabled.value };
  }),

  // PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
  edit('client.push_rules.actions.put', 'PUT', `${RULE}/actions`, (req) => ({
    op: 'actions',
    kind: req.params.kind!,
    ruleId: req.params.ruleId!,
    actions: (req.body as JsonObject).actions,
  })),
];
