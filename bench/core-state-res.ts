// State resolution on a synthetic 30k-event room with two long-lived forks that conflict on power
// levels, join rules, memberships (joins, leaves, kicks, bans), topics and names, merged at the
// end. The figure is the time to resolve the two fork tips' states, not to generate the room.
// (Synapse needed 13.5 s of CPU for a real 30k-event room: synapse#12378.)

import { performance } from 'node:perf_hooks';
import { getRoomVersion } from '../src/core/room-versions.js';
import { resolveState } from '../src/core/state-res.js';
import { generateForkedRoom } from '../test/core/helpers/state-res-scenarios.js';
import { figure, median, type Figure } from './harness.js';

const ROUNDS = 5;

export async function measureStateRes(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const versionId of ['12', '11']) {
    const version = getRoomVersion(versionId)!;
    const room = generateForkedRoom({ version, seed: 20_251_128, totalEvents: 30_000, forks: 2, users: 3_000 });
    resolveState(version, room.tips, room.events); // warm the JIT
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const start = performance.now();
      resolveState(version, room.tips, room.events);
      times.push(performance.now() - start);
    }
    figures.push(
      figure(
        'core',
        `state resolution, ${Math.round(room.eventCount / 1000)}k-event forked room (v${versionId})`,
        Math.round(median(times) * 10) / 10,
        'ms',
        { op: '<=', value: 1000 },
      ),
    );
  }
  return figures;
}
