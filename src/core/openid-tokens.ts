// OpenID tokens (spec: client-server API §OpenID, `POST /user/{userId}/openid/request_token`;
// server-server API §OpenID, `GET /openid/userinfo`): a token a user hands to a third party, which
// asks the user's server who it belongs to. Good for that question only, and for an hour.
//
// Myelin's tokens are self-contained: the user id and expiry, signed with the server's signing
// key, so any process of a deployment can answer `/openid/userinfo` without a table or a lookup
// (Synapse stores them in `open_id_tokens`). A token cannot be revoked before it expires — nor
// can Synapse's, short of deleting rows by hand.

import { randomBytes } from 'node:crypto';
import { encodeCanonicalJson } from './canonical-json.js';
import { isJsonObject, parseJsonInput } from './json.js';
import { encodeBase64Url } from './base64.js';
import { signJson, verifyJsonSignature, type SigningKey } from './signing.js';

/** Synapse's `expires_in`: one hour. */
export const OPENID_TOKEN_LIFETIME_MS = 3_600_000;

const ENTITY = 'openid';

/** A new token for `userId`, valid until `now + OPENID_TOKEN_LIFETIME_MS`. */
export function mintOpenIdToken(userId: string, now: number, key: SigningKey): string {
  const payload = signJson({ sub: userId, exp: now + OPENID_TOKEN_LIFETIME_MS, n: encodeBase64Url(randomBytes(12)) }, ENTITY, key);
  return encodeBase64Url(Buffer.from(encodeCanonicalJson(payload), 'utf8'));
}

/** The user a token was made for, or undefined if it is not one of ours, was tampered with, or expired. */
export function readOpenIdToken(token: string, now: number, keys: readonly SigningKey[]): string | undefined {
  if (token.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  let payload: unknown;
  try {
    payload = parseJsonInput(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isJsonObject(payload) || typeof payload.sub !== 'string' || typeof payload.exp !== 'number') return undefined;
  if (!keys.some((key) => verifyJsonSignature(payload, ENTITY, key.keyId, key.publicKey))) return undefined;
  return payload.exp > now ? payload.sub : undefined;
}
