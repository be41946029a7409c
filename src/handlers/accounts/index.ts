// Accounts: registration (with user-interactive auth), login, logout, passwords, deactivation,
// devices, shared-secret admin registration, rate limiting.

import type { CoreDeps } from '../core.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AccountServices {}

export async function createAccountServices(_core: CoreDeps): Promise<AccountServices> {
  return {};
}
