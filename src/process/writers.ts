// The writer registry: one entry per stream, saying how other processes reach its writer — the
// methods they call (each the replication call `<stream>.<method>`, see replication/rpc-proxy.ts)
// and, for a stream that may have several writers, the shard key that picks a call's writer. From
// it come, in one place each: the writer a handler calls (`ProcessWriters.writer`: this process's
// own, or a proxy to the process writing the stream or shard), what this process serves to the
// others (`ProcessWriters.serve`), and where a reader fetches rows it missed (`writerRows`).

import { parsePdu } from '../core/event-format.js';
import { getRoomVersion } from '../core/room-versions.js';
import { Errors } from '../errors.js';
import type { DeviceListsWriterApi } from '../handlers/e2ee/device-lists.js';
import type { EphemeralStreamWriters } from '../handlers/ephemeral/index.js';
import type { CreateRoomPlan, EventsWriterApi } from '../handlers/kernel/events-writer.js';
import { remoteWriter, serveWriter, type MethodName } from '../replication/rpc-proxy.js';
import type { RpcCaller, RpcServer } from '../replication/rpc.js';
import type { StreamRow } from '../streams/bus.js';
import { STREAM_NAMES, type StreamName } from '../streams/streams.js';
import type { WriterSource } from '../streams/writer-source.js';
import type { WriterPlacement } from './placement.js';

/** The writer interface of every stream, as handlers call it (plain JSON in and out). */
export type StreamWriterApis = EphemeralStreamWriters & {
  events: EventsWriterApi;
  device_lists: DeviceListsWriterApi;
};

type ArgsOf<T, M extends keyof T> = T[M] extends (...args: infer A) => unknown ? A : never;

export interface WriterEntry<T> {
  /** The methods other processes call. */
  readonly methods: readonly MethodName<T>[];
  /**
   * For a stream that may have several writers (`stream_writers`): each method's shard key, from
   * its arguments. The writer is sha256 of the key modulo the number of writers, so a room's
   * history, a room's receipts, a user's keys each stay one writer's line.
   */
  readonly shardKey?: { readonly [M in MethodName<T>]: (...args: ArgsOf<T, M>) => string };
  /**
   * The stream lives in its writer's memory (typing): a reader that missed rows asks the writer
   * for them (`<stream>.rowsBetween`) instead of reading the database.
   */
  readonly inMemory?: true;
}

/** The writer of this stream keeps it in memory and gives the rows a reader missed. */
export interface InMemoryStreamWriter {
  /** The rows a reader that has seen up to `from` needs to reach `to`. */
  rowsBetween(from: number, to: number): StreamRow[];
}

const byUser = (userId: string): string => userId;

export const WRITERS: { readonly [S in StreamName]: WriterEntry<StreamWriterApis[S]> } = {
  events: {
    methods: ['sendEvent', 'createRoom', 'receivePdus', 'backfillPdus', 'prepareEvent', 'persistRemoteJoin', 'storeOutOfBandMembership'],
    shardKey: {
      sendEvent: (roomId) => roomId,
      createRoom: (plan) => roomIdOfPlan(plan),
      receivePdus: (_origin, roomId) => roomId,
      backfillPdus: (_origin, roomId) => roomId,
      prepareEvent: (roomId) => roomId,
      persistRemoteJoin: (join) => join.roomId,
      storeOutOfBandMembership: (roomId) => roomId,
    },
  },
  typing: { methods: ['setTyping'], inMemory: true },
  receipts: { methods: ['putReceipt'], shardKey: { putReceipt: (receipt) => receipt.roomId } },
  account_data: { methods: ['setAccountData', 'addTag', 'removeTag', 'advanceFullyRead'] },
  presence: { methods: ['setPresence', 'userSyncing'] },
  to_device: { methods: ['send', 'receiveRemote'] },
  push_rules: { methods: ['edit'] },
  device_lists: {
    methods: [
      'uploadKeys',
      'uploadSigningKeys',
      'uploadSignatures',
      'devicesDeleted',
      'remoteDeviceListUpdate',
      'remoteSigningKeyUpdate',
      'resyncRemoteUser',
    ],
    shardKey: {
      uploadKeys: byUser,
      uploadSigningKeys: byUser,
      uploadSignatures: byUser,
      devicesDeleted: byUser,
      remoteDeviceListUpdate: (update) => update.userId,
      remoteSigningKeyUpdate: byUser,
      resyncRemoteUser: byUser,
    },
  },
};

/** The room a creation makes: its id decides which events writer owns the room (derived from the create event in v12). */
function roomIdOfPlan(plan: CreateRoomPlan): string {
  const version = getRoomVersion(plan.roomVersion);
  if (!version) throw Errors.badJson(`unknown room version ${plan.roomVersion}`);
  return parsePdu(plan.createEvent, version).roomId;
}

/** A writer of `stream` that runs on `instance` (worker mode: a proxy over replication HTTP). */
export type RemoteWriters = <S extends StreamName>(stream: S, instance: string) => StreamWriterApis[S];

/** Proxies that call the writers of other processes through `rpc`. */
export function remoteWriters(rpc: RpcCaller): RemoteWriters {
  return (stream, instance) => remoteWriter(rpc, instance, stream, WRITERS[stream].methods as never);
}

const ROWS_METHOD = 'rowsBetween';

/** The rows `instance` wrote to an in-memory stream at positions `from < position <= to`, asked of that writer. */
export async function writerRows(rpc: RpcCaller, stream: StreamName, instance: string, from: number, to: number): Promise<StreamRow[]> {
  const rows = await rpc.call(instance, `${stream}.${ROWS_METHOD}`, [from, to]);
  return (rows ?? []) as unknown as StreamRow[];
}

/**
 * The writers of one process: its own (built by the handler areas, which ask `writer` for each
 * stream they write) and proxies to the others'. Without `remote` (a single process) every writer
 * must be this process's own.
 */
export class ProcessWriters implements WriterSource<StreamWriterApis> {
  private readonly own: { [S in StreamName]?: StreamWriterApis[S] } = {};

  constructor(
    private readonly placement: WriterPlacement,
    private readonly remote?: RemoteWriters,
  ) {}

  /** This process's own writer of `stream`, if it writes it. */
  local<S extends StreamName>(stream: S): StreamWriterApis[S] | undefined {
    return this.own[stream];
  }

  async writer<S extends StreamName>(stream: S, local: () => Promise<StreamWriterApis[S]>): Promise<StreamWriterApis[S]> {
    const own = this.placement.writesHere(stream) ? await local() : undefined;
    if (own) this.own[stream] = own;
    return this.route(stream, own);
  }

  /** Serves this process's own writers to the other processes, as the registry lists them. */
  serve(server: RpcServer): void {
    for (const stream of STREAM_NAMES) {
      if (!this.placement.writesHere(stream)) continue;
      const own = this.own[stream];
      if (!own) throw new Error(`this process writes ${stream}, but no handler area built its writer`);
      const entry = WRITERS[stream];
      serveWriter(server, stream, own, entry.methods as never);
      if (entry.inMemory) {
        const rowsOf = (own as Partial<InMemoryStreamWriter>)[ROWS_METHOD];
        if (typeof rowsOf !== 'function') throw new Error(`the ${stream} writer keeps the stream in memory but cannot give its rows`);
        server.register(`${stream}.${ROWS_METHOD}`, async (args) => {
          const [from, to] = args as [number, number];
          return rowsOf.call(own, from, to);
        });
      }
    }
  }

  /**
   * The writer to call: with one writer instance, that instance's (this process's own, or a
   * proxy); with several, one that sends each call to the instance owning the call's shard.
   */
  private route<S extends StreamName>(stream: S, own: StreamWriterApis[S] | undefined): StreamWriterApis[S] {
    type Api = StreamWriterApis[S];
    const proxies = new Map<string, Api>();
    const at = (instance: string): Api => {
      if (instance === this.placement.instanceName) {
        if (!own) throw new Error(`this process is configured to write ${stream} but has no writer for it`);
        return own;
      }
      if (!this.remote) throw new Error(`${stream} is written by ${instance}, which a single process cannot reach`);
      let proxy = proxies.get(instance);
      if (!proxy) proxies.set(instance, (proxy = this.remote(stream, instance)));
      return proxy;
    };
    const instances = this.placement.writersOf(stream);
    if (instances.length === 1) return at(instances[0]!);
    const entry: WriterEntry<Api> = WRITERS[stream];
    const shardKey = entry.shardKey;
    if (!shardKey) throw new Error(`${stream} has ${instances.length} writers, but its calls name no shard`);
    const routed: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const method of entry.methods) {
      const keyOf = shardKey[method] as (...args: unknown[]) => string;
      routed[method] = (...args) => {
        const writer = at(this.placement.writerFor(stream, keyOf(...args))) as unknown as Record<
          string,
          (...a: unknown[]) => Promise<unknown>
        >;
        return writer[method]!(...args);
      };
    }
    return routed as unknown as Api;
  }
}
