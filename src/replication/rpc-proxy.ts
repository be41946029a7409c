// A writer interface (e.g. `EventsWriterApi`) carried over replication HTTP: `remoteWriter` gives
// an object that looks like the writer but calls the process that runs it, and `serveWriter`
// exposes the real writer to those calls. Each method is the call `<prefix>.<method>`, its
// arguments a JSON array and its result the method's result.
//
// Writer interfaces take and return plain JSON for this reason. Two things JSON cannot say:
// trailing `undefined` arguments are dropped (so optional parameters stay absent), and an
// `undefined` argument before a defined one arrives as `null`.

import type { JsonValue } from '../core/json.js';
import { Errors } from '../errors.js';
import { newTxnId, type RpcCaller, type RpcServer } from './rpc.js';

/** The names of `T`'s methods (what a writer interface exposes). */
export type MethodName<T> = {
  [K in keyof T]: T[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof T] &
  string;

/**
 * A `T` whose methods run on `instance`. Each call of a method is one logical call with its own
 * txn id, which all of its retries share, so it runs once however often it is retried.
 */
export function remoteWriter<T>(client: RpcCaller, instance: string, prefix: string, methods: readonly MethodName<T>[]): T {
  const writer: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const method of methods) {
    const name = `${prefix}.${method}`;
    writer[method] = (...args: unknown[]) => client.call(instance, name, encodeArgs(args), { txnId: newTxnId() });
  }
  return writer as T;
}

/** Serves `impl`'s `methods` as the calls `<prefix>.<method>`. */
export function serveWriter<T>(server: RpcServer, prefix: string, impl: T, methods: readonly MethodName<T>[]): void {
  for (const method of methods) {
    const fn = impl[method];
    if (typeof fn !== 'function') throw new Error(`${prefix}.${method} is not a method of the writer served`);
    server.register(`${prefix}.${method}`, async (args) => {
      if (!Array.isArray(args)) throw Errors.badJson(`The arguments of ${prefix}.${method} must be an array`);
      return (await (fn as (...a: unknown[]) => Promise<unknown>).apply(impl, args)) as JsonValue | undefined;
    });
  }
}

function encodeArgs(args: unknown[]): JsonValue {
  let length = args.length;
  while (length > 0 && args[length - 1] === undefined) length--;
  return args.slice(0, length) as JsonValue;
}
