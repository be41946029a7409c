// Where a stream's writer runs. A handler area that writes a stream does not decide that itself: it
// asks for the stream's writer, handing over a factory for its own, and gets back either that
// writer (this process writes the stream) or one that forwards each call to the process writing
// the stream — or, for a stream with several writers, the shard the call concerns. The process
// composition answers from the writer registry (src/process/writers.ts); a single process writes
// everything itself.

import type { StreamName } from './streams.js';

/** `Writers` maps each stream the asker writes to the writer interface it calls. */
export interface WriterSource<Writers> {
  /** The writer of `stream` to call; `local` builds this process's own (called only if it writes the stream). */
  writer<S extends keyof Writers & StreamName>(stream: S, local: () => Promise<Writers[S]>): Promise<Writers[S]>;
}

/** Every writer is this process's own (the single-process server, and tests). */
export function localWriters<Writers>(): WriterSource<Writers> {
  return { writer: (_stream, local) => local() };
}
