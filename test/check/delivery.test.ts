/**
 * The bounded-delivery detector on a handcrafted vCPU state: it counts the vCPU's eligible steps
 * at which one interrupt stays the one to take, fires on the first step past the bound (not
 * later), pauses while the vCPU cannot take it (PMR, running priority), restarts when the vCPU
 * acknowledges, sees an LR the CPU interface does not signal, and reports the vCPU's state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CTR, IRQ, LR, LR_PENDING, VCPU } from '../../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { D } from '../../src/vgic/host.js';
import { irqRecord } from '../../src/vgic/irq.js';
import { deliveryCandidate, DeliveryWatch } from '../../src/check/delivery.js';
import { buildV3, VmTracker } from '../helpers.js';

const vms = new VmTracker();
afterEach(() => vms.destroyAll());

/** vcpu0 with PMR 0xff and group 1 on; SPI 40 queued on its ap_list, enabled, pending, prio 0xa0. */
function stuckSpi() {
  const w = vms.track(buildV3({ vcpus: 2 }));
  const h = w.vm.host;
  const m = h.m;
  const g = w.vm.geometry;
  const vb = vcpuOff(g, 0);
  const r = irqRecord(h, -1, 40);
  const b = irqOff(g, r);
  const saved = { dist: m[D.enabled]! };
  m[D.enabled] = 1;
  m[vb + VCPU.off.pmr] = 0xff;
  m[vb + VCPU.off.eng1] = 1;
  m[b + IRQ.off.enabled] = 1;
  m[b + IRQ.off.pendingLatch] = 1;
  m[b + IRQ.off.priority] = 0xa0;
  m[b + IRQ.off.group] = 1;
  m[b + IRQ.off.target] = 0;
  m[b + IRQ.off.vcpu] = 0;
  m[b + IRQ.off.next] = -1;
  m[b + IRQ.off.prev] = -1;
  m[vb + VCPU.off.apHead] = r;
  m[vb + VCPU.off.apTail] = r;
  const restore = () => {
    m[vb + VCPU.off.usedLrs] = 0;
    m[vb + VCPU.off.ap1r] = 0;
    m[vb + VCPU.off.apHead] = -1;
    m[vb + VCPU.off.apTail] = -1;
    m[b + IRQ.off.vcpu] = -1;
    m[b + IRQ.off.onLr] = 0;
    m[b + IRQ.off.pendingLatch] = 0;
    m[D.enabled] = saved.dist;
  };
  return { h, m, g, vb, r, b, restore };
}

/** Steps until the watch reports (at most `max`); the step count and the message. */
function stepsToFire(watch: DeliveryWatch, max: number): { steps: number; msg: string | null } {
  for (let i = 1; i <= max; i++) {
    const msg = watch.step();
    if (msg) return { steps: i, msg };
  }
  return { steps: max, msg: null };
}

describe('bounded delivery', () => {
  it('fires on the first eligible step past the bound, naming the interrupt, the vCPU and its state', () => {
    const w = stuckSpi();
    expect(deliveryCandidate(w.m, w.g, 0, { rec: -1, lr: -1 })).toEqual({ rec: w.r, lr: -1 });
    const { steps, msg } = stepsToFire(new DeliveryWatch(w.h, 0, 50), 1000);
    expect(steps).toBe(51);
    expect(msg).toMatch(/^bounded delivery: INTID 40 \(priority 0xa0, queued on its ap_list, in no LR\) has been deliverable to vcpu0 for 51 of its eligible guest steps/);
    expect(msg).toContain('vcpu0: PMR 0xff, running priority 0xff, group enables 0/1');
    expect(msg).toContain('LRs (0 of 4 in use): none');
    expect(msg).toContain('ap_list: INTID 40 P prio 0xa0 group 1 target 0');
    // Not this vCPU's to take: another target, disabled, or the distributor off.
    w.m[w.b + IRQ.off.target] = 1;
    expect(deliveryCandidate(w.m, w.g, 0, { rec: -1, lr: -1 }).rec).toBe(-1);
    w.m[w.b + IRQ.off.target] = 0;
    w.m[D.enabled] = 0;
    expect(deliveryCandidate(w.m, w.g, 0, { rec: -1, lr: -1 }).rec).toBe(-1);
    w.restore();
  });

  it('pauses while PMR or the running priority masks it, and restarts at an acknowledgement', () => {
    const w = stuckSpi();
    const watch = new DeliveryWatch(w.h, 0, 50);
    expect(stepsToFire(watch, 30).msg).toBeNull();
    w.m[w.vb + VCPU.off.pmr] = 0x80; // masked: these steps do not count
    expect(stepsToFire(watch, 500).msg).toBeNull();
    w.m[w.vb + VCPU.off.pmr] = 0xff;
    w.m[w.vb + VCPU.off.ap1r] = 1 << (0x80 >> 3); // an active 0x80: running priority 0x80
    expect(stepsToFire(watch, 500).msg).toBeNull();
    w.m[w.vb + VCPU.off.ap1r] = 0;
    expect(stepsToFire(watch, 1000).steps).toBe(21); // 30 + 21 = 51: the wait went on
    // An acknowledgement by the vCPU is progress: the wait starts again.
    const again = new DeliveryWatch(w.h, 0, 50);
    expect(stepsToFire(again, 40).msg).toBeNull();
    w.m[w.vb + VCPU.off.counters + CTR.acks]!++;
    expect(stepsToFire(again, 1000).steps).toBe(51);
    w.restore();
  });

  it('an LR pending and takeable that the guest does not take is a candidate too', () => {
    const w = stuckSpi();
    const lb = w.vb + VCPU.off.lr;
    w.m[lb + LR.off.intid] = 40;
    w.m[lb + LR.off.state] = LR_PENDING;
    w.m[lb + LR.off.priority] = 0xa0;
    w.m[lb + LR.off.group] = 1;
    w.m[w.vb + VCPU.off.usedLrs] = 1;
    w.m[w.b + IRQ.off.onLr] = 1;
    w.m[w.b + IRQ.off.pendingLatch] = 0; // the pending state lives in the LR now
    expect(deliveryCandidate(w.m, w.g, 0, { rec: -1, lr: -1 })).toEqual({ rec: w.r, lr: 0 });
    const { steps, msg } = stepsToFire(new DeliveryWatch(w.h, 0, 10), 100);
    expect(steps).toBe(11);
    expect(msg).toContain('INTID 40 (priority 0xa0, pending in LR0)');
    expect(msg).toContain('LR0 INTID 40 P prio 0xa0 group 1');
    // Group 1 disabled: the CPU interface signals nothing.
    w.m[w.vb + VCPU.off.eng1] = 0;
    expect(deliveryCandidate(w.m, w.g, 0, { rec: -1, lr: -1 }).rec).toBe(-1);
    w.m[lb + LR.off.state] = 0;
    w.restore();
  });
});
