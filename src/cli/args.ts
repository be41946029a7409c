// What every `myelin` command shares: its exit statuses and how it reads its options.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Exit status: success. */
export const EXIT_OK = 0;
/** Exit status: a runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit status: a usage or configuration error. */
export const EXIT_USAGE = 2;

/** Wrong options or arguments: `myelin` prints the message and its help, and exits 2. */
export class UsageError extends Error {}

/** The command's options (no positional arguments); anything unknown or malformed is a `UsageError`. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
