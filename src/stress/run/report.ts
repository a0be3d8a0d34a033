/** Step 4 of a stress run: its report (what ran, what was found, the schedule that ran). */
import type { HistoryEvent } from '../../record/events.js';
import { readSchedule } from '../../sched/controlled.js';
import { readChaosRecording } from '../../sched/chaos-record.js';
import type { Finding } from '../findings.js';
import { historyHash, scheduleHash } from '../hashing.js';
import { historySignature } from '../signature.js';
import type { RunPlan } from './plan.js';
import type { StressRunOptions, StressRunReport } from './types.js';

export interface RunIdentity {
  scenario: string;
  scenarioRef: string;
  scenarioHash: string | null;
}

export function runReport(o: StressRunOptions, p: RunPlan, id: RunIdentity, sched: SharedArrayBuffer | null, recording: SharedArrayBuffer | null, findings: Finding[], events: HistoryEvent[], truncated: boolean, durationMs: number, stopSeq: number): StressRunReport {
  const sch = sched ? readSchedule(sched) : null;
  return {
    ...id,
    nrLr: p.nrLr,
    lrPolicy: p.lrPolicy,
    locking: p.locking,
    depth: o.depth ?? 3,
    seed: p.seed,
    mode: o.mode,
    strategy: p.strategy,
    bugs: o.bugs ?? [],
    ok: findings.length === 0,
    findings,
    durationMs,
    events: events.length,
    truncated,
    historyHash: historyHash(events),
    decidedHash: stopSeq > 0 ? historyHash(events.filter((e) => e.seq < stopSeq - 1)) : historyHash(events),
    signature: historySignature(events),
    schedule: sch ? { steps: sch.steps, preemptions: sch.preemptions, switches: sch.switches, hash: scheduleHash(sch.switches) } : null,
    divergedAt: o.replay && sch ? sch.divergedAt : null,
    ...(o.replayOrder && sch ? { order: { points: o.replayOrder.length, reordered: sch.reordered, leftAt: sch.orderLeftAt } } : {}),
    ...(recording ? { recording: readChaosRecording(recording) } : {}),
    history: o.keepHistory ? events : undefined,
    args: p.args,
    vcpus: p.vcpus,
    gic: p.gic,
  };
}
