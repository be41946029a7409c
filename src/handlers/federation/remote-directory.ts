// Another server's published room list, for our clients (spec: client-server API, `GET`/`POST
// /publicRooms?server=`; server-server API §Public Room Directory, `public_rooms.yaml`). The
// request goes to that server as the client asked it: GET without a filter, POST with one.
// Errors as Synapse gives them: 403 when that server does not share its list, else 502.

import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { FederationClient } from '../../federation/client.js';
import { FederationHttpError, FederationRequestError } from '../../federation/errors.js';

export interface RemotePublicRoomsQuery {
  readonly limit?: number | undefined;
  readonly since?: string | undefined;
  readonly filter?: JsonObject | undefined;
  readonly includeAllNetworks?: boolean | undefined;
  readonly thirdPartyInstanceId?: string | undefined;
}

const TIMEOUT_MS = 30_000;

export class RemoteRoomDirectory {
  constructor(private readonly client: Pick<FederationClient, 'request'>) {}

  async publicRooms(server: string, query: RemotePublicRoomsQuery): Promise<JsonObject> {
    let answer: JsonValue;
    try {
      answer =
        query.filter === undefined
          ? await this.client.request(server, {
              method: 'GET',
              path: '/_matrix/federation/v1/publicRooms',
              query: {
                limit: query.limit,
                since: query.since,
                include_all_networks: query.includeAllNetworks === undefined ? undefined : String(query.includeAllNetworks),
                third_party_instance_id: query.thirdPartyInstanceId,
              },
              timeoutMs: TIMEOUT_MS,
            })
          : await this.client.request(server, {
              method: 'POST',
              path: '/_matrix/federation/v1/publicRooms',
              body: withoutUndefined({
                limit: query.limit,
                since: query.since,
                filter: query.filter,
                include_all_networks: query.includeAllNetworks,
                third_party_instance_id: query.thirdPartyInstanceId,
              }),
              timeoutMs: TIMEOUT_MS,
            });
    } catch (err) {
      if (err instanceof FederationHttpError && err.status === 403) {
        throw Errors.forbidden(`You are not allowed to view the public rooms list of ${server}`);
      }
      if (err instanceof FederationRequestError) throw Errors.badGateway(`Failed to fetch the room list of ${server}: ${err.message}`);
      throw err;
    }
    if (!isJsonObject(answer) || !Array.isArray(answer.chunk)) throw Errors.badGateway(`${server} answered /publicRooms without a chunk`);
    return answer;
  }
}

function withoutUndefined(fields: Record<string, JsonValue | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
}
