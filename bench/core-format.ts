// Benchmarks for the format half of the event core (group `core`): hashing + signing new events,
// and canonical JSON encoding, each on a realistic ~1 KB m.room.message PDU.

import { encodeCanonicalJson } from '../src/core/canonical-json.js';
import { finaliseEvent } from '../src/core/event-format.js';
import { getRoomVersion } from '../src/core/room-versions.js';
import { signingKeyFromSeed } from '../src/core/signing.js';
import type { JsonObject } from '../src/core/json.js';
import { figure, measureRate } from './harness.js';
import type { Figure } from './harness.js';

/** A v12 m.room.message as a server builds it before hashing and signing (~1 KB once signed). */
export function sampleUnsignedMessage(i = 0): JsonObject {
  return {
    auth_events: ['$hy1eZFYcgNxMFNNBgCD5fyOzyWRcBkxfNcrUI5ZpZlE', '$Nt_z68EwFfPqBeHjzEHGsp461Z4EfNEzR-KH5bOYdOY'],
    prev_events: ['$4FbpZrgPQTwoLD9H5y7jcikucCypUOn78mXhQX7WliY'],
    type: 'm.room.message',
    room_id: '!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ',
    sender: '@alice:example.org',
    content: {
      msgtype: 'm.text',
      body: `Message ${i}: ` + 'the quick brown fox jumps over the lazy dog, again and again. '.repeat(5),
      format: 'org.matrix.custom.html',
      formatted_body: `<p>Message ${i}: <b>the quick brown fox</b> jumps over the lazy dog</p>`.repeat(2),
      'm.mentions': { user_ids: ['@bob:example.org'] },
    },
    depth: 1000 + i,
    origin_server_ts: 1_731_769_874_137 + i,
    unsigned: { age_ts: 1_731_769_874_137 },
  };
}

export async function measureCoreFormat(): Promise<Figure[]> {
  const v12 = getRoomVersion('12')!;
  const key = signingKeyFromSeed('bench', new Uint8Array(32).fill(7));

  const unsigned = Array.from({ length: 64 }, (_, i) => sampleUnsignedMessage(i));
  let next = 0;
  const signRate = measureRate(() => {
    for (let i = 0; i < 50; i++) finaliseEvent(unsigned[next++ & 63]!, v12, 'example.org', key);
    return 50;
  });

  const signed = unsigned.map((pdu) => finaliseEvent(pdu, v12, 'example.org', key).pdu);
  let bytes = 0;
  const encodeRate = measureRate(() => {
    for (let i = 0; i < 200; i++) bytes += encodeCanonicalJson(signed[next++ & 63]!).length;
    return 200;
  });
  if (bytes < 0) console.log(bytes); // keep the work observable

  return [
    figure('core', 'hash + sign events', Math.round(signRate), 'events/s', { op: '>=', value: 12000 }),
    figure('core', 'canonical JSON encode (1 KB event)', Math.round(encodeRate), 'encodes/s', {
      op: '>=',
      value: 100000,
    }),
  ];
}
