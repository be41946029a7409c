// Client-server API: TURN server credentials for VoIP (S:data/api/client-server/voip.yaml).
//
// With `turn_shared_secret`, credentials follow the TURN REST API convention that coturn's
// `use-auth-secret` checks (as Synapse): the username is `<expiry in seconds>:<user id>` and the
// password the base64 HMAC-SHA1 of it under the secret, so the TURN server verifies them without
// asking the homeserver. Without TURN configured the answer is an empty object.

import { createHmac } from 'node:crypto';
import type { Config } from '../../config/types.js';
import { Errors } from '../../errors.js';
import type { Requester } from '../../handlers/kernel/requester.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export interface TurnCredentials {
  username: string;
  password: string;
  /** Seconds the credentials stay valid. */
  ttl: number;
  uris: string[];
}

export function turnCredentials(config: Config, requester: Requester, now: number): TurnCredentials | Record<string, never> {
  if (requester.isGuest && !config.turn_allow_guests) throw Errors.guestAccessForbidden();
  const secret = config.turn_shared_secret;
  const lifetime = config.turn_user_lifetime;
  if (config.turn_uris.length === 0 || secret === undefined || lifetime <= 0) return {};
  const username = `${Math.floor((now + lifetime) / 1000)}:${requester.userId}`;
  // Standard padded base64: the TURN server computes the same string.
  const password = createHmac('sha1', secret).update(username).digest('base64');
  return { username, password, ttl: Math.floor(lifetime / 1000), uris: config.turn_uris };
}

export const voipRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/voip/turnServer
  defineRoute({
    name: 'client.voip.turn_server',
    method: 'GET',
    paths: clientPaths('/voip/turnServer', ['v3', 'r0', 'api/v1']),
    resource: 'client',
    // Guests only when `turn_allow_guests` (checked by `turnCredentials`).
    auth: 'guest',
    handle: ({ requester }, { config, now }) => ({ body: turnCredentials(config, requester, now()) }),
  }),
];
