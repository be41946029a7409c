// The logger of a `myelin` process, as its config's `log_config` file sets it up.

import { readLogConfig } from '../config/log-config.js';
import type { Config } from '../config/types.js';
import { createLogger } from '../util/log.js';

export function loggerFor(config: Config, instance: string) {
  const settings = config.log_config ? readLogConfig(config.log_config, config.origin.describe(['log_config'])) : {};
  return createLogger({ instance, ...settings });
}
