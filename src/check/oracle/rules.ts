/**
 * The oracle's judgements (spec §3.4-3.5 pending and target, §4.4-4.6 LR population and fold,
 * §5.1-5.2 IAR/EOIR/DIR). Latitude, exactly as the architecture and KVM allow it:
 * - an LR is a snapshot (spec §4.5): its pending state is judged against the model when it was
 *   populated, not when the guest acknowledges it, so disabling, retargeting, reprioritising or
 *   lowering the line after population does not make the acknowledgement illegal;
 * - edges coalesce: a latch is one bit (per GICv2 SGI source), set by any number of PENDs;
 * - level interrupts' pending state is not judged here (the line may legally fall after
 *   population, and mapped lines are re-sampled from the device): checker.ts's level rule keeps it;
 * - LPIs have no active state, and a DISCARDed LPI may be delivered from its ap_list;
 * - the CPU-interface rules (PMR, running priority, group enables) need the vCPU's VMCR: until the
 *   history shows one, they do not judge.
 */
import type { HistoryEvent } from '../../record/events.js';
import type { Violation } from '../violation.js';
import { groupPriority, runningPriority, vmcrEoiMode, vmcrGroupEnabled, vmcrPmr } from './cpuif.js';
import { activeHistory, latchHistory, ref, violation, what } from './explain.js';
import { isActive, isLpi, latchOf, UNKNOWN, type CpuModel, type IrqModel, type LrModel, type Problem } from './state.js';

export interface RuleCtx {
  readonly limit: number;
  readonly out: Violation[];
  readonly cpus: ReadonlyMap<number, CpuModel>;
}

const hex = (p: number): string => `0x${p.toString(16)}`;

function isEdge(irq: IrqModel): boolean {
  return irq.trigger === 0;
}

/**
 * Pending state presented to vCPU v at event e (an LR population, or an ACK the history shows no
 * LR for): take the model's latch, or say why the model had nothing to give. Distributor rules
 * that decide whether the host may present it at all (enabled, target) apply to an inactive
 * interrupt only: an active one stays with its vCPU (vgic_target_oracle).
 */
export function takePending(irq: IrqModel, src: number, v: number, e: HistoryEvent, populatedActive = false): Problem | null {
  let problem: Problem | null = null;
  if (isEdge(irq)) {
    const l = latchOf(irq, src);
    if (l.set) {
      l.set = false;
      l.takenBy = e;
    } else {
      // Delivered again after its pending state was consumed: a duplicate. Never made pending, or
      // cleared (ICPENDR, ITS CLEAR) since: spurious.
      const cleared = l.clearedBy !== null && (l.takenBy === null || l.clearedBy.seq > l.takenBy.seq);
      problem = {
        kind: l.setBy === null || cleared ? 'spurious' : 'duplicate',
        why: `the model has it not pending: ${latchHistory(l)}`,
        from: l.setBy?.seq ?? -1,
      };
    }
  }
  // `populatedActive`: the LR carries the active state too (pending+active), so the host placed it
  // with the vCPU that holds it active, whatever the target says now; true for an LPI as well,
  // whose active state the model does not track beyond its LR ("P+A LR after a retarget").
  if (problem !== null || isActive(irq, src) || populatedActive) return problem;
  if (irq.enabled === 0) return { kind: 'ack-disabled', why: `the model has it disabled since ${ref(irq.enabledBy)}`, from: irq.enabledBy!.seq };
  if (irq.owner < 0 && irq.target !== UNKNOWN && irq.target !== v) {
    return { kind: 'ack-not-target', why: `the model targets ${irq.target < 0 ? 'no vCPU' : `vcpu${irq.target}`} since ${ref(irq.targetBy)}`, from: irq.targetBy!.seq };
  }
  return null;
}

/** Where the presented pending state came from, for a message. */
function source(lr: LrModel | null): string {
  return lr === null ? 'no LR the history shows' : `${ref(lr.populatedBy)} (LR ${lr.populatedBy.a})`;
}

/**
 * ACK e of `irq` (source src) on cpu: `lr` is the model LR it came from (null when the history
 * shows none: judged against the distributor state now). Returns the pushed ack entry.
 */
export function judgeAck(ctx: RuleCtx, cpu: CpuModel, irq: IrqModel, src: number, lr: LrModel | null, e: HistoryEvent): void {
  const name = `vcpu${cpu.v} acked ${what(irq, src)}`;
  const report = (p: Problem, suffix = ''): void => {
    ctx.out.push(violation(p.kind, e, irq, `${name} from ${source(lr)}, but ${p.why}${suffix}`, p.from, ctx.limit, cpu));
  };
  const problem = lr !== null ? lr.problem : takePending(irq, src, cpu.v, e);
  const group = lr !== null ? lr.group : irq.group;
  const vmcr = cpu.vmcr;
  const pre = groupPriority(e.a, group, vmcr);
  if (problem !== null) {
    report(problem, lr !== null ? ` when it was populated` : '');
  } else if (!isLpi(irq.intid) && isActive(irq, src)) {
    const by = irq.active.get(src) ?? null;
    report({ kind: 'ack-active', why: `the model has it still active since ${ref(by)}`, from: by?.seq ?? -1 });
  } else if (vmcr !== UNKNOWN) {
    const rp = runningPriority(cpu.acks);
    if (e.a >= vmcrPmr(vmcr)) {
      report({ kind: 'ack-masked', why: `its priority ${hex(e.a)} is not above the PMR ${hex(vmcrPmr(vmcr))} (${ref(cpu.vmcrBy)})`, from: cpu.vmcrBy!.seq });
    } else if (group !== UNKNOWN && !vmcrGroupEnabled(vmcr, group)) {
      report({ kind: 'ack-group-disabled', why: `its group ${group} is disabled on the vCPU (${ref(cpu.vmcrBy)})`, from: cpu.vmcrBy!.seq });
    } else if (pre >= rp.pre) {
      report({ kind: 'ack-running-priority', why: `its group priority ${hex(pre)} does not preempt the running priority ${hex(rp.pre)} of ${ref(rp.by!.ack)}, not yet EOIed`, from: rp.by!.ack.seq });
    }
  }
  cpu.acks.push({ irq, src, prio: e.a, pre, ack: e });
  if (!isLpi(irq.intid)) {
    irq.active.set(src, e);
    irq.clearedBy = null;
  }
}

/** EOI e (priority drop) on cpu: it must name an acknowledged interrupt awaiting its drop. */
export function judgeEoi(ctx: RuleCtx, cpu: CpuModel, irq: IrqModel, src: number, e: HistoryEvent): void {
  for (let i = cpu.acks.length - 1; i >= 0; i--) {
    const a = cpu.acks[i]!;
    if (a.irq === irq && a.src === src) {
      cpu.acks.splice(i, 1);
      irq.lastEoi = e;
      return;
    }
  }
  const mode = cpu.vmcr === UNKNOWN ? '' : ` (EOImode ${vmcrEoiMode(cpu.vmcr)})`;
  const prev = irq.lastEoi !== null ? `: its last EOI was ${ref(irq.lastEoi)}` : '';
  const act = isLpi(irq.intid) ? '' : isActive(irq, src) ? ', though it is active' : ` and the model has it inactive: ${activeHistory(irq)}`;
  ctx.out.push(violation('eoi-not-active', e, irq, `vcpu${cpu.v} wrote EOIR for ${what(irq, src)}${mode} with no acknowledgement of it awaiting a priority drop${act}${prev}`, irq.lastEoi?.seq ?? -1, ctx.limit, cpu));
}

/** DEACT e: only an active interrupt can be deactivated (LPIs have no active state). */
export function judgeDeact(ctx: RuleCtx, irq: IrqModel, src: number, e: HistoryEvent): void {
  if (isLpi(irq.intid)) return;
  if (irq.active.delete(src) || irq.activeUnsourced || irq.clearedBy !== null) {
    irq.activeUnsourced = false;
    irq.clearedBy = null;
  } else {
    const by = ['an EOI in an LR', 'a DIR', "the host's EOIcount walk at fold"][e.b] ?? 'something';
    ctx.out.push(violation('deactivate-inactive', e, irq, `vcpu${e.vcpu} deactivated ${what(irq, src)} (by ${by}), but the model has it inactive: ${activeHistory(irq)}`, irq.lastDeact?.seq ?? -1, ctx.limit, ctx.cpus.get(e.vcpu) ?? null));
  }
  irq.lastDeact = e;
}

/**
 * ISACTIVER/ICACTIVER e: the vgic must have every vCPU that holds the interrupt in an LR out of
 * the guest and folded first (vgic_access_active_prepare halts the guest): an active state
 * changed under a live LR is overwritten by that LR's fold (race §12.5).
 */
export function judgeActiveChange(ctx: RuleCtx, irq: IrqModel, e: HistoryEvent): void {
  for (const cpu of ctx.cpus.values()) {
    for (const [i, lr] of cpu.lrs) {
      if (lr.irq !== irq) continue;
      ctx.out.push(violation('active-changed-in-lr', e, irq, `${what(irq, -1)} was made ${e.a ? 'active' : 'inactive'} while it sat in LR ${i} of vcpu${cpu.v} (${ref(lr.populatedBy)}), which had not been folded: that LR's fold will write its stale state back`, lr.populatedBy.seq, ctx.limit, cpu));
      return;
    }
  }
}
