/**
 * Step 3 of a stress run, once every thread has stopped: record the end state, then check the
 * history (the lifecycle checker), the structure of every ap_list, the scenario's accounting and
 * the quiescence audit.
 */
import { EventKind, type HistoryEvent } from '../../record/events.js';
import { checkHistory, formatViolation } from '../../check/checker.js';
import { readHistory, type HistoryBuffers } from '../../record/history.js';
import { vmStructureProblems } from '../../check/invariants.js';
import { eventfdsIn, quiescenceAudit } from '../../check/audits.js';
import { apListAudit } from '../../check/ap-list-audit.js';
import { takeAccessFindings } from '../../check/lockset/index.js';
import type { Vm } from '../../kvm/vm.js';
import { IRQ, LPI_BASE } from '../../shm/layouts.js';
import { irqOff } from '../../shm/vm-memory.js';
import { irqRecord } from '../../vgic/irq.js';
import type { Finding } from '../findings.js';
import type { ScenarioModule } from '../scenario.js';
import type { RunPlan } from './plan.js';

export function checkRun(vm: Vm, p: RunPlan, mod: ScenarioModule, history: HistoryBuffers, findings: Finding[]): { events: HistoryEvent[]; truncated: boolean } {
  const h = vm.host;
  const { args, gic, vcpus } = p;
  const info = mod.info;
  // Taken first: it also resets the Eraser state now that the threads have stopped.
  const lockset = takeAccessFindings(h);
  // Quiescent: record the end state, then check the history.
  const w = h.hist!;
  w.record(EventKind.QUIESCE, -1, -1, 0, 0);
  for (const sp of args.spis) {
    const r = irqRecord(h, -1, sp);
    if (r < 0) continue;
    const b = irqOff(vm.geometry, r);
    w.record(EventKind.LEVEL_END, sp, -1, h.m[b + IRQ.off.lineLevel]!, h.m[b + IRQ.off.enabled]!);
  }
  const { events, truncated } = readHistory(history);
  // A run cut short (timeout, scheduler failure, fault) is not quiescent: its "lost" verdicts
  // would only repeat the finding that cut it short.
  const cutShort = findings.length > 0;
  findings.push(...lockset); // a lockset report does not cut the run short: its other checks still hold
  for (const v of checkHistory(events, { gicVersion: gic === 'v3' ? 3 : 2, resampleSpis: info.resample ? args.spis : [], discardable: info.discardsLpis ? (i) => i >= LPI_BASE : undefined })) {
    if (cutShort && (v.kind === 'lost' || v.kind === 'level-not-represented')) continue;
    findings.push({ kind: v.kind, message: v.message, details: formatViolation(v) });
  }
  for (const prob of vmStructureProblems(h.m, vm.geometry, vcpus)) findings.push({ kind: 'invariant', message: prob });
  if (!cutShort) for (const msg of mod.check?.(vm.ram, args) ?? []) findings.push({ kind: 'accounting', message: msg });
  // Every thread has stopped: the state must be at rest (no held lock, nothing in flight, LPI
  // refcounts equal to the references that exist, every eventfd balanced). A run cut short may have left a thread
  // stopped mid-section (a fault, a teardown): its audit would only echo that finding.
  if (!cutShort) {
    for (const prob of quiescenceAudit(h.m, vm.geometry, [...vm.irqfdEventFds(), ...eventfdsIn(args.extra)])) findings.push({ kind: 'audit', message: prob });
    for (const prob of apListAudit(h, vcpus, events)) findings.push({ kind: 'audit', message: prob });
  }
  return { events, truncated };
}
