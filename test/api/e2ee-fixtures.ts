// Keys as a client makes them, for the end-to-end encryption tests (made in
// ../helpers/e2ee-keys.ts, shared with the benchmark), and helpers that upload them.

import type { JsonObject } from '../../src/core/json.js';
import { deviceKeysOf, ed25519, type Ed25519 } from '../helpers/e2ee-keys.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';

export * from '../helpers/e2ee-keys.js';

export interface TestDevice {
  userId: string;
  deviceId: string;
  accessToken: string;
  key: Ed25519;
  deviceKeys: JsonObject;
}

/** Uploads device keys for the user's logged-in device. */
export async function uploadDevice(hs: TestHomeserver, user: TestUser): Promise<TestDevice> {
  const key = ed25519();
  const deviceKeys = deviceKeysOf(user, key);
  const res = await hs.call('POST', '/_matrix/client/v3/keys/upload', { token: user.accessToken, body: { device_keys: deviceKeys } });
  if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${res.text}`);
  return { userId: user.userId, deviceId: user.deviceId, accessToken: user.accessToken, key, deviceKeys };
}

/** Another logged-in device of the user, with keys uploaded. */
export async function newDevice(hs: TestHomeserver, user: TestUser): Promise<TestDevice> {
  const session = await hs.homeserver.services.auth.createSession(user.userId);
  return uploadDevice(hs, { ...user, ...session });
}
