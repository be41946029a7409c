// Server access control lists (spec: client-server API §Server Access Control Lists (ACLs) for
// rooms; the `m.room.server_acl` event schema; server-server API §Server Access Control Lists).
//
// The rules, in the event schema's order: no ACL event → allow; an IP literal server name when
// `allow_ip_literals` is `false` → deny; a `deny` pattern matches → deny; an `allow` pattern
// matches → allow; otherwise deny. Patterns are glob-style (`*`, `?`; spec: appendices §Glob-style
// matching) and are matched against the server name without its port. Matching ignores case, as
// DNS names do (and as Synapse matches them).

import { isJsonObject } from './json.js';

/** The host part of a server name: without its port, IPv6 brackets kept. */
export function serverHost(serverName: string): string {
  if (serverName.startsWith('[')) {
    const end = serverName.indexOf(']');
    return end < 0 ? serverName : serverName.slice(0, end + 1);
  }
  const colon = serverName.lastIndexOf(':');
  return colon < 0 ? serverName : serverName.slice(0, colon);
}

function isIpLiteral(host: string): boolean {
  return host.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

const globCache = new Map<string, RegExp>();

/** A glob-style pattern as an anchored, case-insensitive regular expression. */
function globRegExp(pattern: string): RegExp {
  let regexp = globCache.get(pattern);
  if (!regexp) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    regexp = new RegExp(`^${body}$`, 'is');
    if (globCache.size > 10_000) globCache.clear();
    globCache.set(pattern, regexp);
  }
  return regexp;
}

function matchesAny(host: string, patterns: unknown): boolean {
  if (!Array.isArray(patterns)) return false;
  return patterns.some((pattern) => typeof pattern === 'string' && globRegExp(pattern).test(host));
}

/**
 * Whether `serverName` may take part in a room whose `m.room.server_acl` content is `content`
 * (`undefined`: the room has no ACL event).
 */
export function serverAclAllows(content: unknown, serverName: string): boolean {
  if (content === undefined) return true;
  const acl = isJsonObject(content) ? content : {};
  const host = serverHost(serverName);
  // "Defaults to true if missing or otherwise not a boolean."
  if (acl.allow_ip_literals === false && isIpLiteral(host)) return false;
  if (matchesAny(host, acl.deny)) return false;
  return matchesAny(host, acl.allow);
}
