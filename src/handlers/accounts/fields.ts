// The fields of account requests, as zod schemas. The values may come from the request body or
// from the body a user-interactive auth session stored earlier, so the handlers read them with
// `parseInput` rather than leaving it to the route. Wrong types are 400 `M_BAD_JSON`; absent
// values and `null` both read as "not given", as Synapse does.

import { z } from 'zod';
import { absentIfNull, checked } from '../../errors.js';

/** Synapse's limits on what a client may name a device (`Syn:synapse/handlers/device.py`). */
export const MAX_DEVICE_ID_LENGTH = 512;
export const MAX_DEVICE_DISPLAY_NAME_LENGTH = 100;

/** An optional string of at most `maxLength` characters; longer is `errcode` with `message`. */
export function boundedString(maxLength: number, errcode: 'M_BAD_JSON' | 'M_INVALID_PARAM' | 'M_INVALID_USERNAME', message: string) {
  return absentIfNull(checked(z.string(), (value) => value.length <= maxLength, errcode, message).optional());
}

const deviceIdField = boundedString(MAX_DEVICE_ID_LENGTH, 'M_INVALID_PARAM', `cannot be longer than ${MAX_DEVICE_ID_LENGTH} characters`);

export const deviceDisplayNameField = boundedString(
  MAX_DEVICE_DISPLAY_NAME_LENGTH,
  'M_INVALID_PARAM',
  `Device display name is too long (max ${MAX_DEVICE_DISPLAY_NAME_LENGTH})`,
);

/** The device a login or registration signs in (`device_id`, `initial_device_display_name`). */
export const newDeviceFields = z.object({
  device_id: deviceIdField,
  initial_device_display_name: deviceDisplayNameField,
});

/** A required list of strings (e.g. device ids); `null` answers as missing. */
export const stringList = absentIfNull(z.array(z.string()));
