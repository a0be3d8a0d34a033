/**
 * Run mutants: each in a job slot (a private copy of the package), as a child process running the
 * probe campaign, bounded by a timeout. Outcome per mutant:
 *   killed    the campaign reported a finding (its kind is the detector that killed it)
 *   timeout   the probe did not finish in time (a hang counts as killed)
 *   crash     the probe died without a result, or the campaign threw (killed at load or set-up)
 *   survived  every run passed
 *   invalid   the mutated module does not parse (excluded from the kill rate)
 *   flaky     killed, but the unmutated copy fails the same scenario and mode too (or also runs
 *             past the timeout): a false alarm of the tester under load, not a kill (excluded
 *             from the kill rate)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { applyMutant, makeSlot, mutatedText, restoreSlot, type Slot } from './apply.js';
import type { ProbeConfig, ProbeResult } from './probe.js';
import type { Mutant } from './sampler.js';
import type { StressMode } from '../../src/stress/runner.js';

export type Status = 'killed' | 'timeout' | 'crash' | 'survived' | 'invalid' | 'flaky';

export interface MutantResult extends Mutant {
  status: Status;
  /** What killed it: the first finding's kind, or `timeout` / `crash`. */
  detector?: string;
  /** Every finding kind of the failing run. */
  kinds?: string[];
  scenario?: string;
  mode?: string;
  /** The failing run's seed: `stress --scenario S --mode M --seed SEED --iterations 1` in the copy reruns it. */
  seed?: number;
  message?: string;
  ms: number;
}

export interface RunOptions {
  root: string;
  /** Where the job slots' copies go. */
  workDir: string;
  jobs: number;
  probe: ProbeConfig;
  timeoutMs: number;
  onResult?: (r: MutantResult, done: number) => void;
  signal?: AbortSignal;
}

/** Run one probe campaign in a slot's copy, as a child process bounded by `timeoutMs`. */
export function runProbe(slot: Slot, cfg: ProbeConfig, timeoutMs: number, signal?: AbortSignal): Promise<{ result: ProbeResult | null; code: number | null; timedOut: boolean; aborted: boolean; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((res) => {
    const child: ChildProcess = spawn(process.execPath, [join(slot.root, 'dist/bench/mutants/probe.js'), JSON.stringify(cfg)], {
      // Its own process group: a Ctrl-C reaches only us, and we stop the probe (so it is not a "crash").
      cwd: slot.root, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let out = '';
    let err = '';
    let timedOut = false;
    let aborted = false;
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const line = out.trim().split('\n').pop() ?? '';
      let result: ProbeResult | null = null;
      try {
        result = line ? (JSON.parse(line) as ProbeResult) : null;
      } catch {
        result = null;
      }
      res({ result, code, timedOut, aborted, stderr: err, ms: performance.now() - t0 });
    });
  });
}

/**
 * The outcome of one mutant in a slot (the slot is clean again afterwards). A kill by a finding is
 * confirmed: the unmutated copy runs the same scenario and mode with the same seeds, and if it
 * fails too the kill was the tester's false alarm ("flaky"); a timeout likewise, if the unmutated
 * copy cannot finish the campaign in that time either.
 */
export async function runMutant(o: RunOptions, slot: Slot, m: Mutant): Promise<MutantResult | null> {
  const r = await measure(o, slot, m);
  if (r?.status === 'timeout') {
    // A timeout is a hang only if the unmutated model finishes the same campaign in that time:
    // on a loaded machine a surviving mutant's campaign can just be slow.
    const clean = await runProbe(slot, o.probe, o.timeoutMs, o.signal);
    if (clean.aborted) return null;
    return clean.timedOut ? { ...r, status: 'flaky', message: `the unmutated campaign also took over ${o.timeoutMs} ms (machine load)` } : r;
  }
  if (r?.status !== 'killed' || !r.scenario || !r.mode) return r;
  const again = await runProbe(slot, { ...o.probe, scenarios: [r.scenario], modes: [r.mode as StressMode] }, o.timeoutMs, o.signal);
  if (again.aborted) return null;
  if (again.result && !again.result.killed) return r;
  const f = again.result?.findings?.[0];
  return { ...r, status: 'flaky', message: `unmutated copy fails too: ${f ? `${f.kind}: ${f.message}` : again.timedOut ? 'timeout' : 'crash'}` };
}

async function measure(o: RunOptions, slot: Slot, m: Mutant): Promise<MutantResult | null> {
  const mt = mutatedText(o.root, m);
  if ('invalid' in mt) return { ...m, status: 'invalid', message: mt.invalid, ms: 0 };
  applyMutant(slot, m, mt.text);
  try {
    const p = await runProbe(slot, o.probe, o.timeoutMs, o.signal);
    if (p.aborted) return null;
    if (p.timedOut) return { ...m, status: 'timeout', detector: 'timeout', message: `no result within ${o.timeoutMs} ms`, ms: p.ms };
    const r = p.result;
    if (!r || r.crash) {
      const why = r?.crash ?? (p.stderr.trim().split('\n').find((l) => /Error|error:/.test(l)) ?? `exit ${p.code}`);
      return { ...m, status: 'crash', detector: 'crash', message: why.slice(0, 300), ms: p.ms };
    }
    if (!r.killed) return { ...m, status: 'survived', ms: p.ms };
    const kinds = [...new Set((r.findings ?? []).map((f) => f.kind))];
    return {
      ...m, status: 'killed', detector: kinds[0] ?? 'unknown', kinds, scenario: r.scenario, mode: r.mode, seed: r.seed,
      message: r.findings?.[0]?.message, ms: p.ms,
    };
  } finally {
    restoreSlot(slot);
  }
}

/** Run mutants over `jobs` slots; results in the order they finish. Stops starting new ones on abort. */
export async function runMutants(o: RunOptions, mutants: readonly Mutant[]): Promise<MutantResult[]> {
  const results: MutantResult[] = [];
  let next = 0;
  const slots = Array.from({ length: Math.max(1, o.jobs) }, (_, i) => makeSlot(o.root, join(o.workDir, `slot-${i}`)));
  await Promise.all(
    slots.map(async (slot) => {
      while (next < mutants.length && !o.signal?.aborted) {
        const m = mutants[next++]!;
        const r = await runMutant(o, slot, m);
        if (!r) break;
        results.push(r);
        o.onResult?.(r, results.length);
      }
    }),
  );
  return results;
}

/** The probe on the unmutated copy: must pass, and its time sets the per-mutant timeout. */
export async function baseline(o: Omit<RunOptions, 'jobs' | 'onResult'>): Promise<{ ok: boolean; ms: number; why?: string }> {
  const slot = makeSlot(o.root, join(o.workDir, 'slot-0'));
  const p = await runProbe(slot, o.probe, o.timeoutMs, o.signal);
  if (p.result && !p.result.killed) return { ok: true, ms: p.ms };
  const f = p.result?.findings?.[0];
  const why = p.timedOut ? 'timeout' : p.result?.crash ?? (f ? `${p.result?.scenario} ${p.result?.mode}: ${f.kind}: ${f.message}` : p.stderr.slice(-500));
  return { ok: false, ms: p.ms, why };
}
