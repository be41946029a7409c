// What API route handlers receive. Each process composes exactly the services its role needs
// and passes them in; there is no global service locator.

import type { Config } from '../config/load.js';

export interface ApiServices {
  readonly config: Config;
}
