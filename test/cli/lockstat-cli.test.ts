/**
 * `vgic-emu lockstat` as a user runs it (the built bin): usage and its errors (exit 2), the JSON
 * schema behind the report, the oversubscription marks, a user workload module, and Ctrl-C
 * (exit 130 with what was measured). Runs are tiny (--seconds 0.1): these check the shape and
 * the arithmetic that holds whatever the machine's load, never a rate.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distPath } from '../../src/kvm/worker-path.js';
import { interruptCli } from './interrupt.js';
import { EXIT_REASONS } from '../../src/shm/layouts.js';
import type { LockstatReport } from '../../src/lockstat/campaign.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const CLI_TIMEOUT_MS = 60_000;

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [distPath('src/cli/main.js'), 'lockstat', ...args], { cwd: dir, timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vgic-emu-lockstat-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TINY = ['--seconds', '0.1', '--repeat', '1'];

describe.concurrent('vgic-emu lockstat: usage', () => {
  it('-h prints the usage (exit 0); --list names the built-in workloads', async () => {
    const h = await cli(['-h']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^usage: vgic-emu lockstat/);
    for (const f of ['--workload', '--locking', '--vcpus', '--seconds', '--repeat', '--json', '--html']) expect(h.stdout).toContain(f);
    const l = await cli(['--list']);
    expect(l.code).toBe(0);
    for (const w of ['mixed', 'spi', 'sgi', 'irqfd', 'level', 'lpi']) expect(l.stdout).toMatch(new RegExp(`^  ${w} `, 'm'));
  });

  it.each([
    [['--vcpus', '0'], /--vcpus: each value must be a whole number in 1\.\.64, got '0'/],
    [['--vcpus', '2,,4'], /--vcpus needs a comma-separated list/],
    [['--vcpus', '2,2'], /--vcpus lists a value twice/],
    [['--locking', 'fine,bogus'], /--locking: each value must be fine or global, got 'bogus'/],
    [['--workload', 'nope'], /--workload: unknown workload 'nope'/],
    [['--seconds', '0'], /--seconds must be at least 0.05/],
    [['--repeat', '1.5'], /--repeat needs a whole number/],
    [['--stats', 'off'], /--stats must be one of timed, counts/],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('%j is a usage error (exit 2, message and usage on stderr)', async (args, msg) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr).toMatch(/usage: vgic-emu lockstat/);
    expect(r.stdout).toBe('');
  });

  it('a user module whose plan is unusable is a usage error naming the field', async () => {
    const bad = join(dir, 'bad-workload.mjs');
    writeFileSync(bad, "export default { name: 'bad', plan: () => ({ mainSpis: -1 }) };\n");
    const r = await cli(['--workload', bad, ...TINY]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/workload bad: plan\(\): mainSpis must be a whole number/);
  });
});

describe('vgic-emu lockstat: a run', () => {
  it('--json: every configuration with its repeats, spreads, lock_stat table, exits; oversubscription marked in JSON and text', async () => {
    const json = join(dir, 'spi.json');
    const r = await cli(['--workload', 'spi', '--vcpus', '1,4', '--seconds', '0.1', '--repeat', '2', '--no-overhead', '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/lockstat runs: +\d+\/8 .*elapsed \d+s/);
    const s = JSON.parse(readFileSync(json, 'utf8')) as LockstatReport;
    expect(s).toMatchObject({ tool: 'vgic-emu lockstat', cores: availableParallelism(), workload: { name: 'spi' }, seconds: 0.1, repeat: 2, statsMode: 'timed', vcpus: [1, 4], locking: ['fine', 'global'], interrupted: false, timedOverhead: null });
    expect(s.configs.map((c) => `${c.locking}/${c.vcpus}`)).toEqual(['fine/1', 'global/1', 'fine/4', 'global/4']);
    for (const c of s.configs) {
      // spi: the vCPUs and the main thread (no device workers).
      expect(c.threads).toBe(c.vcpus + 1);
      expect(c.oversubscribed).toBe(c.threads > s.cores);
      expect(c.repeats).toHaveLength(2);
      for (const sp of [c.throughput, c.latencyP50Ns, c.latencyP99Ns, c.latencyMaxNs]) {
        expect(sp.min).toBeLessThanOrEqual(sp.median);
        expect(sp.median).toBeLessThanOrEqual(sp.max);
      }
      for (const rep of c.repeats) {
        expect(rep.seconds).toBeGreaterThan(0);
        expect(Object.keys(rep.exits)).toEqual([...EXIT_REASONS]);
        expect(rep.latencyNs.p50).toBeLessThanOrEqual(rep.latencyNs.p99);
      }
      const names = c.lockStats.map((x) => x.name);
      if (c.locking === 'global') expect(names).not.toContain('irq_lock');
      // Read while the threads run (as /proc/lock_stat is): a contention under way when the phase
      // starts or ends may have reached one of its counters and not yet the next, at most one
      // per thread at each end.
      const slack = 2 * c.threads;
      for (const x of c.lockStats) {
        for (const k of ['acquisitions', 'contentions', 'conBounces', 'acqBounces', 'waitNs', 'waitMinNs', 'waitMaxNs', 'waitAvgNs', 'holdNs', 'holdMinNs', 'holdMaxNs', 'holdAvgNs'] as const) expect(Number.isInteger(x[k]), `${x.name}.${k}`).toBe(true);
        expect(x.contentions).toBeLessThanOrEqual(x.acquisitions + slack);
        expect(x.points.reduce((a, p) => a + p.contentions, 0)).toBeLessThanOrEqual(x.contentions + slack);
        expect(Math.abs(x.waitHistogram!.reduce((a, b) => a + b, 0) - x.contentions)).toBeLessThanOrEqual(slack);
        expect(x.instances).toBeDefined();
      }
    }
    // The swimlane is recorded at the largest vCPU count, once per locking mode.
    expect(s.configs.filter((c) => c.trace).map((c) => `${c.locking}/${c.vcpus}`)).toEqual(['fine/4', 'global/4']);
    expect(s.ratios.map((x) => x.vcpus)).toEqual([1, 4]);
    for (const x of s.ratios) expect(x.fineOverGlobal.min).toBeLessThanOrEqual(x.fineOverGlobal.max);
    // The text report marks the same configurations.
    const marked = r.stdout.split('\n').filter((l) => /^ {2}(fine|global) +\d+ vCPUs/.test(l));
    expect(marked).toHaveLength(4);
    for (const c of s.configs) {
      const line = marked.find((l) => new RegExp(`^ {2}${c.locking} +${c.vcpus} vCPUs`).test(l))!;
      expect(line.includes('OVERSUBSCRIBED'), line).toBe(c.oversubscribed);
    }
    expect(r.stdout).toMatch(new RegExp(`${s.cores} cores`));
    expect(r.stdout).toMatch(/lock_stat: fine, 1 vCPUs/);
    expect(r.stdout).toMatch(/con-bounces +contentions +waittime-min/);
  });

  it("--json -: the timed-mode overhead is measured and reported; a user module's workload runs", async () => {
    const mod = join(dir, 'two-sources.mjs');
    writeFileSync(mod, "export default { name: 'two-sources', description: 'test', plan: (v) => ({ mainSpis: 2, devices: [{ edge: 1, level: 1 }], lpis: 0, sgi: v > 1, churn: 0 }) };\n");
    const r = await cli(['--workload', mod, '--vcpus', '2', '--locking', 'fine', ...TINY, '--json', '-']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as LockstatReport;
    expect(s.workload).toEqual({ name: 'two-sources', description: 'test' });
    expect(s.configs).toHaveLength(1);
    expect(s.configs[0]!.threads).toBe(2 + 1 + 1);
    const o = s.timedOverhead!;
    expect(o.fastPathNs.counts).toBeGreaterThan(0);
    expect(o.fastPathNs.timed).toBeGreaterThan(0);
    expect(o.fastPathRatio).toBeGreaterThan(0);
    expect(o.endToEnd).toMatchObject({ vcpus: 2, seconds: 0.1 });
  });

  it('Ctrl-C ends the run under way, reports what was measured, exits 130', async () => {
    // Two repeats of 3 s: interrupted once the first is reported done (progress "1/2").
    const { code, stdout, stderr } = await interruptCli(['lockstat', '--workload', 'spi', '--vcpus', '1', '--locking', 'fine', '--seconds', '3', '--repeat', '2', '--no-overhead', '--json', join(dir, 'int.json')], dir, /lockstat runs: +1\/2 /, 50_000);
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: reporting what was measured/);
    expect(stdout).toMatch(/INTERRUPTED: partial results/);
    expect(stdout).toMatch(/^ {2}fine +1 vCPUs/m);
    const s = JSON.parse(readFileSync(join(dir, 'int.json'), 'utf8')) as LockstatReport;
    expect(s.interrupted).toBe(true);
    // The finished repeat is kept whole; the interrupted one only if it measured anything.
    const reps = s.configs[0]!.repeats;
    expect(reps[0]).toMatchObject({ interrupted: false });
    expect(reps[0]!.seconds).toBeGreaterThanOrEqual(3);
    expect(reps.length).toBeLessThanOrEqual(2);
    if (reps[1]) expect(reps[1]).toMatchObject({ interrupted: true });
  });
});
