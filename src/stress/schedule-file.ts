/**
 * Schedule files: a controlled run, written so that it can be replayed exactly. Versioned JSON
 * that records everything that decides the run (scenario and, for a user module, a hash of its
 * text; GIC model, vCPUs, locking, LRs, bugs, strategy, seed; package and Node versions); a file
 * of another format or version is refused with a clear error, and replay refuses a run whose
 * configuration differs from the file's (scheduleMismatch).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Switch } from '../sched/controlled.js';
import { packageVersion } from '../version.js';

export const SCHEDULE_FORMAT = 'vgic-emu-schedule';
export const SCHEDULE_VERSION = 2;

export interface ScheduleFile {
  format: typeof SCHEDULE_FORMAT;
  version: number;
  /** A built-in scenario's name, or a user module's absolute path. */
  scenario: string;
  /** sha256 of a user module's text (null for built-ins, which the package version pins). */
  scenarioHash: string | null;
  seed: number;
  mode: 'controlled';
  strategy: string;
  depth?: number;
  bugs: string[];
  vcpus: number;
  gic: 'v2' | 'v3';
  size: number;
  spis: number;
  nrLr: number;
  lrPolicy: 'mainline' | 'classic';
  locking: 'fine' | 'global';
  /** The package and Node versions that recorded it (a replay on others may diverge). */
  vgicEmu: string;
  node: string;
  /** Number of preemptive switches (the minimiser's measure). */
  preemptions: number;
  /** [step, thread, forced (1) or preemptive (0)] */
  switches: [number, number, number][];
  /**
   * A schedule made from a chaos run's recording (`--mode chaos --record`): the recorded order of
   * schedule points (run-length pairs [thread, count]), how its controlled replay followed it, and
   * whether that replay failed as the chaos run did. `switches` are the replay's, so that the file
   * replays exactly like any other.
   */
  recordedFrom?: ChaosOrigin;
}

export interface ChaosOrigin {
  mode: 'chaos';
  /** Whether the chaos run failed, and whether its controlled replay did. */
  chaosFailed: boolean;
  replayFailed: boolean;
  points: number;
  truncated: boolean;
  reordered: number;
  leftAt: number | null;
  order: [number, number][];
}

/** A recorded order (thread per point) as run-length pairs. */
export function encodeOrder(order: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const t of order) {
    const last = out[out.length - 1];
    if (last && last[0] === t) last[1]++;
    else out.push([t, 1]);
  }
  return out;
}

export function decodeOrder(pairs: readonly [number, number][]): number[] {
  const out: number[] = [];
  for (const [t, n] of pairs) for (let i = 0; i < n; i++) out.push(t);
  return out;
}

/** The run configuration a schedule file pins (what a replay must match). */
export type ScheduleConfig = Pick<ScheduleFile, 'scenario' | 'scenarioHash' | 'seed' | 'strategy' | 'depth' | 'bugs' | 'vcpus' | 'gic' | 'size' | 'spis' | 'nrLr' | 'lrPolicy' | 'locking'>;

/** sha256 of a scenario module's text, by its file: URL; null for a built-in (not a file: URL the user gave). */
export function scenarioHash(url: string, builtin: boolean): string | null {
  if (builtin || !url.startsWith('file:')) return null;
  return createHash('sha256').update(readFileSync(fileURLToPath(url))).digest('hex');
}

/**
 * The first difference between what a replay was asked for and what the file recorded, as a
 * sentence, or null. `asked` holds only what the user gave explicitly (flags), plus the current
 * scenario module's hash.
 */
export function scheduleMismatch(f: ScheduleFile, asked: Partial<ScheduleConfig>): string | null {
  for (const k of Object.keys(asked) as (keyof ScheduleConfig)[]) {
    const want = JSON.stringify(f[k] ?? null);
    const got = JSON.stringify(asked[k] ?? null);
    if (want === got) continue;
    if (k === 'scenarioHash') return `the scenario module ${f.scenario} changed since the schedule was recorded (sha256 ${f.scenarioHash?.slice(0, 12)}…, now ${String(asked.scenarioHash).slice(0, 12)}…)`;
    return `the schedule was recorded with ${k} ${want}, not ${got}`;
  }
  return null;
}

export function toScheduleFile(meta: ScheduleConfig, switches: readonly Switch[]): ScheduleFile {
  return {
    format: SCHEDULE_FORMAT,
    version: SCHEDULE_VERSION,
    mode: 'controlled',
    ...meta,
    vgicEmu: packageVersion(),
    node: process.version,
    preemptions: switches.filter((s) => !s.forced).length,
    switches: switches.map((s) => [s.step, s.to, s.forced ? 1 : 0]),
  };
}

export function writeScheduleFile(path: string, f: ScheduleFile): void {
  writeFileSync(path, `${JSON.stringify(f)}\n`);
}

export function readScheduleFile(path: string): ScheduleFile {
  let f: ScheduleFile;
  try {
    f = JSON.parse(readFileSync(path, 'utf8')) as ScheduleFile;
  } catch (e) {
    throw new Error(`cannot read schedule file ${path}: ${(e as Error).message}`);
  }
  if (f.format !== SCHEDULE_FORMAT) throw new Error(`${path} is not a vgic-emu schedule file`);
  if (f.version !== SCHEDULE_VERSION) throw new Error(`${path}: schedule format version ${f.version}, this vgic-emu reads version ${SCHEDULE_VERSION}`);
  if (!Array.isArray(f.switches)) throw new Error(`${path}: no switches`);
  return f;
}

export function fileSwitches(f: ScheduleFile): Switch[] {
  return f.switches.map(([step, to, forced]) => ({ step, to, forced: forced === 1 }));
}
