/** What a stress run is asked to do (StressRunOptions) and what it reports (StressRunReport). */
import type { HistoryEvent } from '../../record/events.js';
import type { Switch } from '../../sched/controlled.js';
import type { Finding } from '../findings.js';
import type { ScenarioArgs } from '../scenario.js';

export type StressMode = 'chaos' | 'controlled';
export type Strategy = 'random' | 'pct';

export interface StressRunOptions {
  /** Built-in scenario name or a module path. */
  scenario: string;
  seed: number;
  mode: StressMode;
  strategy?: Strategy;
  /** PCT depth (default 3). */
  depth?: number;
  /** Random-walk switch probability per schedule point (default 0.05). */
  p?: number;
  vcpus?: number;
  iterations?: number;
  spis?: number;
  gic?: 'v2' | 'v3';
  nrLr?: number;
  /** LR overflow handling (createVm lrPolicy); default 'mainline'. */
  lrPolicy?: 'mainline' | 'classic';
  locking?: 'fine' | 'global';
  /**
   * Lockset checking (VmOptions.checkAccess), default on: every access to the shared state is
   * checked against its layout's protection. Off only to measure what checking costs.
   */
  checkAccess?: boolean;
  bugs?: readonly string[];
  /** Controlled mode: replay these switches instead of the strategy. */
  replay?: readonly Switch[];
  /** Controlled mode: replay this order of schedule points (thread slot per point: a chaos recording). */
  replayOrder?: readonly number[];
  /** Controlled mode: the end of each satisfied wait is a schedule point (replaying a schedule an order replay made). */
  pollPoints?: boolean;
  /** Chaos mode: record the order in which the threads pass their schedule points. */
  record?: boolean;
  /** Overall bound on the run (ms). Default 30000. */
  timeoutMs?: number;
  /** Chaos mode: how long a liveness condition must persist (ms). Default 1000. */
  watchdogMs?: number;
  /** Keep the merged history in the report. */
  keepHistory?: boolean;
}

export interface StressRunReport {
  /** The scenario's own name (info.name). */
  scenario: string;
  /** How to name it again: a built-in's name, or the module's absolute path (repro lines use it). */
  scenarioRef: string;
  /** sha256 of a user module's text, null for a built-in. */
  scenarioHash: string | null;
  nrLr: number;
  lrPolicy: 'mainline' | 'classic';
  locking: 'fine' | 'global';
  depth: number;
  seed: number;
  mode: StressMode;
  strategy: Strategy | 'replay' | null;
  bugs: readonly string[];
  ok: boolean;
  findings: Finding[];
  durationMs: number;
  events: number;
  truncated: boolean;
  historyHash: string;
  /**
   * The hash of the history up to the first in-run stop (stopVmNow: a detector that fired, or the
   * driver at its end), the part the schedule decides; the whole history's when nothing stopped
   * the run from inside. What a replay check compares.
   */
  decidedHash: string;
  schedule: { steps: number; preemptions: number; switches: Switch[]; hash: string } | null;
  /** The lifecycle transitions the history shows (signature.ts): what this run covered. */
  signature: number[];
  /** Chaos mode with `record`: the order in which the threads passed their schedule points. */
  recording?: { order: number[]; truncated: boolean };
  /** An order replay: how closely it followed the recording (strategies/order.ts). */
  order?: { points: number; reordered: number; leftAt: number | null };
  /** A replay that could not follow its recorded schedule: the first step where it left it. */
  divergedAt: number | null;
  /**
   * Set by a campaign on a controlled failure it ran twice: true when the second run gave the same
   * history up to the stop (`decidedHash`), false when it did not (the report is unconfirmed: it does not replay).
   */
  confirmed?: boolean;
  history?: HistoryEvent[];
  args: ScenarioArgs;
  vcpus: number;
  gic: 'v2' | 'v3';
}
