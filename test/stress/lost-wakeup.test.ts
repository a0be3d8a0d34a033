/**
 * The controlled scheduler's lost wake-up detector: a kick that rings a parked vCPU's doorbell
 * without notifying it (bug seed kickNoNotify) costs a plain run one park slice and is reported by
 * nothing else; here it is found at the step where the kicker went on without the notify, with the
 * word, the waiter and the writer, and the report replays (the run goes on to its end inside the
 * schedule). The same seed without the bug is clean.
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressRunOptions } from '../../src/stress/runner.js';

describe('lost wake-up (controlled mode)', () => {
  it('kickNoNotify: reported with the word, the waiter and the writer; deterministic; clean without the seed', async () => {
    const o: StressRunOptions = { scenario: 'spi-storm', mode: 'controlled', strategy: 'random', seed: 0x2602fbd0, iterations: 30, timeoutMs: 30_000, bugs: ['kickNoNotify'] };
    const a = await runStress(o);
    const lost = a.findings.filter((f) => f.kind === 'lost-wakeup');
    expect(a.findings.map((f) => f.kind)).toEqual(['lost-wakeup']);
    expect(lost[0]!.message).toMatch(/^lost wake-up( \(\d+ lost wake-ups in this run; the first:\))? at schedule step \d+: vcpu(\d) was parked on vcpu\2\.wake \(word \d+, waiting while it held 0\); (driver|vcpu\d|irqfd-injector) changed it by step \d+ and passed 4 more schedule points/);
    const b = await runStress(o);
    expect(b.historyHash).toBe(a.historyHash);
    expect(b.findings).toEqual(a.findings);
    const clean = await runStress({ ...o, bugs: [] });
    expect(clean.findings).toEqual([]);
  });
});
