/**
 * The irqfd injector is a scheduled thread in controlled mode (issue 10, "no false alarms"). Before,
 * it ran outside the controlled scheduler: a driver waiting for an interrupt that the injector's
 * work item still had to inject saw both vCPUs asleep, nobody else enabled, and gave up with "every
 * other thread is blocked" (the irqfd-shared report that did not reproduce). The fixture routes
 * GSI 0 two ways, so every irqfd signal goes to the work item.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runStress, type StressRunOptions } from '../../src/stress/runner.js';

const workItem = fileURLToPath(new URL('./fixtures/irqfd-work-item.mjs', import.meta.url));
const deviceThread = fileURLToPath(new URL('./fixtures/device-thread.mjs', import.meta.url));

describe('controlled mode schedules the irqfd injector', () => {
  it('a driver waiting for work only the injector can do never reports a give-up', async () => {
    for (const seed of [1, 2, 3]) {
      const r = await runStress({ scenario: workItem, seed, mode: 'controlled', timeoutMs: 20_000 });
      expect(r.findings, `seed ${seed}`).toEqual([]);
    }
  });

  it('runs with injector work replay exactly: same seed, same history; the recorded schedule too', async () => {
    const o: StressRunOptions = { scenario: workItem, seed: 7, mode: 'controlled', timeoutMs: 20_000 };
    const a = await runStress(o);
    const b = await runStress(o);
    const c = await runStress({ ...o, replay: a.schedule!.switches });
    expect(a.findings).toEqual([]);
    expect(b.historyHash).toBe(a.historyHash);
    expect(c.divergedAt).toBeNull();
    expect(c.historyHash).toBe(a.historyHash);
  });

  it('a device thread (outside the scheduler) that is still raising its line is accounted for: no give-up', async () => {
    const r = await runStress({ scenario: deviceThread, seed: 1, mode: 'controlled', timeoutMs: 20_000 });
    expect(r.findings).toEqual([]);
  });

  it('irqfd-shared, seed 0x7f9da037 (the false alarm): clean, and the same history twice', async () => {
    const o: StressRunOptions = { scenario: 'irqfd-shared', seed: 0x7f9da037, mode: 'controlled', timeoutMs: 20_000 };
    const a = await runStress(o);
    const b = await runStress(o);
    expect(a.findings).toEqual([]);
    expect(b.historyHash).toBe(a.historyHash);
    expect(b.schedule!.hash).toBe(a.schedule!.hash);
  });
});
