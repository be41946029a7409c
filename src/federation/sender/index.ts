// The federation sender: see sender.ts.

export { FederationSender, startingPosition, type FederationSenderOptions } from './sender.js';
export { RemoteServerUpNotifier } from './remote-server-up.js';
export { DEFAULT_RETRY_POLICY, formatDelay, nextRetryInterval, type RetryPolicy } from './backoff.js';
export { FederationShard, senderInstanceFor, senderTag } from './sharding.js';
export type { DestinationStatus, TransactionReport } from './destination-queue.js';
