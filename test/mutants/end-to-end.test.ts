/**
 * One known-bad mutant end to end: dropping the kick at the end of the queueing path
 * (queueIrqUnlock: a vCPU blocked in WFI is never woken for the interrupt just queued) is applied
 * to a private copy of the compiled package, a short controlled campaign runs against the copy,
 * and the mutant is reported killed by the lost-wakeup detector (and confirmed: the unmutated copy
 * passes the same scenario). The unmutated copy passes the same
 * campaign, and the copy is the original again afterwards. About 2 s.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/kvm/worker-path.js';
import { makeSlot } from '../../bench/mutants/apply.js';
import type { ProbeConfig } from '../../bench/mutants/probe.js';
import { formatReport, summarise } from '../../bench/mutants/report.js';
import { baseline, runMutant, type RunOptions } from '../../bench/mutants/runner.js';
import { enumerateMutants, sample } from '../../bench/mutants/sampler.js';

const probe: ProbeConfig = { scenarios: ['spi-storm'], modes: ['controlled'], runs: { controlled: 2 }, seed: 1, runTimeoutMs: 10_000 };
const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-mutants-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('npm run mutants, end to end', () => {
  const o: RunOptions = { root: PACKAGE_ROOT, workDir, jobs: 1, probe, timeoutMs: 30_000 };

  it('the unmutated copy passes the probe campaign', async () => {
    const b = await baseline(o);
    expect(b.why).toBeUndefined();
    expect(b.ok).toBe(true);
  });

  it('a dropped kick in the queueing path is killed by the lost-wakeup detector', async () => {
    const kicks = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), 'src/vgic/queue.ts', ['drop-wake'])
      .filter((m) => m.description === 'drop kickVcpu(h, t)')
      .sort((a, b) => a.line - b.line);
    // queueIrqUnlock kicks twice: in the already-queued branch, then after queueing (the last one).
    expect(kicks.length).toBe(2);
    const [m] = sample([kicks[1]!], 1, 1);
    const slot = makeSlot(PACKAGE_ROOT, join(workDir, 'e2e'));
    const r = await runMutant(o, slot, m!);
    expect(r).not.toBeNull();
    expect({ status: r!.status, detector: r!.detector, scenario: r!.scenario, mode: r!.mode }).toEqual({
      status: 'killed', detector: 'lost-wakeup', scenario: 'spi-storm', mode: 'controlled',
    });
    expect(readFileSync(join(slot.root, 'dist', m!.js), 'utf8')).toBe(readFileSync(join(PACKAGE_ROOT, 'dist', m!.js), 'utf8'));

    const s = summarise([r!, { ...r!, id: 'm1', status: 'survived', detector: undefined }, { ...r!, id: 'm2', status: 'invalid' }]);
    expect(s.killRate).toBe(0.5);
    expect(s.byDetector).toEqual({ 'lost-wakeup': 1 });
    const text = formatReport(s);
    expect(text).toContain('kill rate: 50.0% (1/2');
    expect(text).toContain(`m1    ${`${m!.file}:${m!.line}`.padEnd(36)} drop-wake      drop kickVcpu(h, t)`);
    expect(text).toContain('| kickVcpu(h, t);');
  });
});
