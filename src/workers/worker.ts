// A worker process: the same composition as the main process (src/workers/homeserver.ts), with the
// worker's listeners, its instance name, and the deployment's bus and writers.

export { startWorker } from './homeserver.js';
