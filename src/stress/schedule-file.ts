/**
 * Schedule files: a controlled run, written so that it can be replayed exactly. Versioned JSON;
 * a file of another format or version is refused with a clear error.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Switch } from '../sched/controlled.js';

export const SCHEDULE_FORMAT = 'vgic-emu-schedule';
export const SCHEDULE_VERSION = 1;

export interface ScheduleFile {
  format: typeof SCHEDULE_FORMAT;
  version: number;
  scenario: string;
  seed: number;
  strategy: string;
  bugs: string[];
  vcpus: number;
  gic: 'v2' | 'v3';
  size: number;
  spis: number;
  nrLr?: number;
  /** Number of preemptive switches (the minimiser's measure). */
  preemptions: number;
  /** [step, thread, forced (1) or preemptive (0)] */
  switches: [number, number, number][];
}

export function toScheduleFile(meta: Omit<ScheduleFile, 'format' | 'version' | 'switches' | 'preemptions'>, switches: readonly Switch[]): ScheduleFile {
  return {
    format: SCHEDULE_FORMAT,
    version: SCHEDULE_VERSION,
    ...meta,
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
