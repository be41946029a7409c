// Logging: pino, with readable lines on a terminal and JSON lines otherwise. Every line carries
// the component (`name`, e.g. `myelin.http.listener`) and the process's instance name (`main`, or
// the worker's name), so the lines of a cluster can be told apart and grepped.

import { createWriteStream } from 'node:fs';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import { createRequire } from 'node:module';
import type pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LogOptions {
  instance: string;
  level?: Level;
  /** Write JSON lines to this file instead of stdout. */
  file?: string;
  /** Force readable (true) or JSON (false) output; default: readable when stdout is a TTY. */
  pretty?: boolean;
}

export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? (process.env.MYELIN_LOG_LEVEL as Level | undefined) ?? 'info';
  let destination: DestinationStream;
  if (options.file !== undefined) {
    destination = createWriteStream(options.file, { flags: 'a' });
  } else if (options.pretty ?? process.stdout.isTTY) {
    // Loaded only for a terminal: processes under a supervisor or systemd log JSON lines.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof pinoPretty;
    destination = pretty({
      sync: true,
      colorize: process.stdout.isTTY,
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname,name,instance',
      messageFormat: '{name} - {instance} - {msg}',
    });
  } else {
    destination = pino.destination({ sync: true });
  }
  const root = pino({ level, base: { instance: options.instance } }, destination);
  return withRoot(root.child({ name: 'myelin' }), root);
}

const roots = new WeakMap<Logger, Logger>();

function withRoot(logger: Logger, root: Logger): Logger {
  roots.set(logger, root);
  return logger;
}

/**
 * The logger of one component, named `myelin.<component>`. Always derived from the process's root
 * logger, so a line carries exactly one name whichever component logger it was derived from.
 */
export function componentLogger(parent: Logger, component: string): Logger {
  const root = roots.get(parent) ?? parent;
  return withRoot(root.child({ name: `myelin.${component}` }), root);
}
