// Body schemas shared by the API's routes (zod; the dispatcher parses each body with its route's
// schema and answers the first problem as a Matrix error naming the field, see `inputIssueError`
// in src/errors.ts, which also has the building blocks: `jsonObject`, `optionalString`, ...).

import { z } from 'zod';
import type { JsonObject } from '../core/json.js';

/** A body that may be left out (older clients send none): read as `{}`, then parsed as any other. */
export function optionalBody<S extends z.ZodType<object>>(schema: S) {
  return schema.prefault({} as z.input<S>);
}

/**
 * A JSON object whose listed fields are checked, with every other key kept as it came: a body
 * that is also read as a whole (e.g. kept by a user-interactive auth session).
 */
export function jsonObjectWith<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  return z.looseObject(shape).transform((value) => value as typeof value & JsonObject);
}
