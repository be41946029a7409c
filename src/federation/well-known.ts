// What our own `/.well-known/matrix/server` says (`serve_server_wellknown`; spec: server-server
// API §Resolving server names, `wellknown.yaml`).
//
// It is served at https://<server_name>/, so whoever reaches it can reach this server's HTTPS
// front. It delegates to the host of `public_baseurl` (where clients already reach us), on its
// port or 443, so a reverse proxy terminating TLS there serves federation too. Without
// `public_baseurl` it delegates to the server name itself on port 443 (Synapse's answer), keeping
// an explicit port of the server name.

import { formatHostAndPort, splitServerName } from '../core/server-names.js';

export function serverWellKnownDelegation(config: { readonly server_name: string; readonly public_baseurl?: string | undefined }): string {
  if (config.public_baseurl !== undefined) {
    const url = new URL(config.public_baseurl);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const explicitPort = url.protocol === 'https:' && url.port !== '' ? Number(url.port) : undefined;
    return formatHostAndPort(host, explicitPort ?? 443);
  }
  const parts = splitServerName(config.server_name);
  if (!parts) return `${config.server_name}:443`;
  return formatHostAndPort(parts.hostname, parts.port ?? 443);
}
