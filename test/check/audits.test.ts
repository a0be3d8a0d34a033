/**
 * The quiescence audits fire on what they describe: each check on a VM at rest, first clean, then
 * with one handcrafted violation of the kind a real bug leaves behind (a lock never released, an
 * irqfd reader that never left, an LPI reference taken or dropped once too often, a freed LPI on an
 * ap_list).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventFd } from '../../src/index.js';
import { IRQ, IRQFD, LPI_BASE, PHYS_INTID_BASE, PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, VCPU } from '../../src/shm/layouts.js';
import { irqfdOff, irqOff, physOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { eventfdAudit, eventfdsIn, quiescenceAudit } from '../../src/check/audits.js';
import { EFD_SEMAPHORE } from '../../src/eventfd/eventfd.js';
import { irqRecord } from '../../src/vgic/irq.js';
import { D } from '../../src/vgic/host.js';
import { buildV3, VmTracker } from '../helpers.js';

const vms = new VmTracker();
afterEach(() => vms.destroyAll());

function world() {
  const w = vms.track(buildV3({ vcpus: 2 }));
  const m = w.vm.host.m;
  const g = w.vm.geometry;
  return { ...w, m, g, audit: () => quiescenceAudit(m, g) };
}

describe('quiescence audits', () => {
  it('a VM at rest passes every audit', () => {
    expect(world().audit()).toEqual([]);
  });

  it('a lock left held: an SPI\'s irq_lock, a vCPU\'s ap_list_lock', () => {
    const w = world();
    const r = irqRecord(w.vm.host, -1, 40);
    Atomics.store(w.m, irqOff(w.g, r) + IRQ.off.lock, 1);
    Atomics.store(w.m, vcpuOff(w.g, 1) + VCPU.off.apLock, 2);
    const out = w.audit();
    expect(out).toContainEqual(expect.stringMatching(/^irq record \d+ \(INTID 40\)\.lock is still held at quiescence/));
    expect(out).toContainEqual(expect.stringMatching(/^vcpu1\.apLock is still held/));
    expect(out).toHaveLength(2);
    Atomics.store(w.m, irqOff(w.g, r) + IRQ.off.lock, 0);
    Atomics.store(w.m, vcpuOff(w.g, 1) + VCPU.off.apLock, 0);
  });

  it('an irqfd reader that never left (inflight stays up)', () => {
    const w = world();
    w.vm.irqfd({ fd: new EventFd(), gsi: 8 });
    const slot = w.vm.irqfds()[0]!.slot;
    Atomics.add(w.m, irqfdOff(w.g, slot) + IRQFD.off.inflight, 1);
    expect(w.audit()).toEqual([`irqfd ${slot} (gsi 8) has 1 injection(s) in flight at quiescence`]);
    Atomics.sub(w.m, irqfdOff(w.g, slot) + IRQFD.off.inflight, 1);
  });

  it('an LPI reference leaked, and a freed LPI still on an ap_list', () => {
    const w = world();
    const leak = irqOff(w.g, w.g.lpiRecordBase + 3);
    Atomics.store(w.m, leak + IRQ.off.refcount, 1); // a get without its put
    const freed = irqOff(w.g, w.g.lpiRecordBase + 7);
    w.m[freed + IRQ.off.vcpu] = 0; // on vcpu0's ap_list with refcount 0
    const out = w.audit();
    expect(out).toContain(`LPI ${LPI_BASE + 3}: refcount 1, but 0 reference(s) exist (0 ITE, 0 translation-cache, 0 ap_list)`);
    expect(out).toContain(`LPI ${LPI_BASE + 7}: refcount 0, but 1 reference(s) exist (0 ITE, 0 translation-cache, 1 ap_list): a freed LPI is still on an ap_list`);
    w.m[freed + IRQ.off.vcpu] = -1;
  });
});

describe('eventfd balance (added = taken + left)', () => {
  it('holds through writes, reads, semaphore reads, saturating signals and the irqfd fast path; a count lost behind its back is reported', async () => {
    const a = new EventFd(5);
    a.write(7n);
    expect(a.read()).toBe(12n);
    a.write(0xffff_ffffn); // wraps the 32-bit totals
    a.write(3n);
    const s = new EventFd(0, EFD_SEMAPHORE);
    s.write(3n);
    expect(s.read()).toBe(1n);
    const full = new EventFd();
    full.write(0xffff_ffff_ffff_fff0n);
    expect(full.signal(100n)).toBe(0xen); // saturates at 2^64-2
    // An irqfd's fast path consumes in the writer thread: still balanced.
    const w = world();
    const fd = new EventFd();
    w.vm.irqfd({ fd, gsi: 8 });
    fd.write(1n);
    fd.write(2n);
    const fds = [{ name: 'a', fd: a }, { name: 's', fd: s }, { name: 'full', fd: full }, ...w.vm.irqfdEventFds()];
    expect(fds).toHaveLength(4);
    expect(eventfdAudit(fds)).toEqual([]);
    expect(w.audit()).toEqual([]);
    // A count that vanished without a read (what a lost update in the CAS loop leaves).
    new BigUint64Array((a.share() as { sab: SharedArrayBuffer }).sab, 0, 1)[0] = 0n;
    expect(eventfdAudit(fds)).toEqual([`eventfd a: ${(5 + 7 + 0xffff_ffff + 3) >>> 0} added but 12 taken and 0 left at quiescence (mod 2^32): a count was lost or invented`]);
  });

  it('finds the eventfds a scenario hands out, as objects or shared handles, once each', () => {
    const x = new EventFd();
    const y = new EventFd();
    const found = eventfdsIn({ fds: [x.share(), y], nested: { again: x.share() }, n: 3, s: 'eventfd', fake: { kind: 'eventfd', sab: 1 } });
    expect(found.map((f) => f.name)).toEqual(['extra.fds[0]', 'extra.fds[1]', 'extra.nested.again']);
    x.write(1n);
    expect(eventfdAudit(found)).toEqual([]);
  });
});

describe('forwarded physical lines', () => {
  it('a forwarded line names a HW-mapped SPI; an active one needs the guest to hold the interrupt', () => {
    const w = world();
    const p = physOff(w.g, 0);
    const b = irqOff(w.g, irqRecord(w.vm.host, -1, 40));
    Atomics.store(w.m, p + PHYS_IRQ.off.used, 1);
    Atomics.store(w.m, p + PHYS_IRQ.off.state, PIRQ_FWD);
    w.m[p + PHYS_IRQ.off.vintid] = 40;
    expect(w.audit()).toEqual(['physical line 0 is forwarded to INTID 40, but that SPI is not HW-mapped']);
    w.m[b + IRQ.off.hw] = 1;
    w.m[b + IRQ.off.hwintid] = PHYS_INTID_BASE + 1;
    expect(w.audit()).toEqual([`physical line 0 is forwarded to INTID 40, but that SPI is mapped to pINTID ${PHYS_INTID_BASE + 1}`]);
    w.m[b + IRQ.off.hwintid] = PHYS_INTID_BASE;
    expect(w.audit()).toEqual([]);
    Atomics.store(w.m, p + PHYS_IRQ.off.state, PIRQ_FWD | PIRQ_ACTIVE);
    expect(w.audit()).toEqual(['physical line 0 is active at quiescence, but the guest\'s INTID 40 is neither pending nor active: nothing will deactivate it']);
    w.m[b + IRQ.off.active] = 1;
    expect(w.audit()).toEqual([]);
    w.m[p + PHYS_IRQ.off.vintid] = 2000;
    expect(w.audit()).toEqual(['physical line 0 is forwarded to INTID 2000, which is not an SPI of this VM']);
    // Leave the VM as it was for teardown.
    w.m[b + IRQ.off.active] = 0;
    w.m[b + IRQ.off.hw] = 0;
    Atomics.store(w.m, p + PHYS_IRQ.off.state, 0);
    Atomics.store(w.m, p + PHYS_IRQ.off.used, 0);
  });
});

describe('LPI records at rest', () => {
  it('a referenced record names its LPI, an unreferenced one was released', () => {
    const w = world();
    const b = irqOff(w.g, w.g.lpiRecordBase + 5);
    w.m[b + IRQ.off.intid] = LPI_BASE + 5; // unreferenced, never released
    expect(w.audit()).toEqual([`LPI ${LPI_BASE + 5}: no reference is left, but its record was never released (a put that skipped the release)`]);
    w.m[b + IRQ.off.intid] = 0;
    expect(w.audit()).toEqual([]);
  });
});

describe('ap_lists and LRs at rest (after every vCPU\'s final prune)', () => {
  it('keeps only what the kernel\'s prune keeps, unless the interrupt changed after the last prune', async () => {
    const { apListAudit } = await import('../../src/check/ap-list-audit.js');
    const { EventKind } = await import('../../src/record/events.js');
    const w = world();
    const h = w.vm.host;
    const vb = vcpuOff(w.g, 0);
    const r = irqRecord(h, -1, 40);
    const b = irqOff(w.g, r);
    // SPI 40 pending on vcpu0's ap_list, targeting vcpu0, but disabled; vcpu0 last pruned at seq 10.
    w.m[b + IRQ.off.pendingLatch] = 1;
    w.m[b + IRQ.off.target] = 0;
    w.m[b + IRQ.off.vcpu] = 0;
    w.m[vb + VCPU.off.apHead] = r;
    w.m[vb + VCPU.off.apTail] = r;
    w.m[vb + VCPU.off.prunedAt] = 10;
    const disable = { seq: 4, kind: EventKind.ENABLE, intid: 40, vcpu: -1, a: 0, b: 0 };
    expect(apListAudit(h, 2, [disable])).toEqual([
      'INTID 40 is on vcpu0\'s ap_list at quiescence, disabled, unchanged since vcpu0\'s last prune (history seq 10; last change #4): the prune should have removed it',
    ]);
    // Disabled after the last prune: mainline leaves it there until the next one.
    expect(apListAudit(h, 2, [{ ...disable, seq: 12 }])).toEqual([]);
    // Enabled and pending but retargeted: the prune should have migrated it.
    w.m[b + IRQ.off.enabled] = 1;
    w.m[D.enabled] = 1;
    w.m[b + IRQ.off.target] = 1;
    expect(apListAudit(h, 2, [])).toEqual(['INTID 40 is on vcpu0\'s ap_list at quiescence, targeting vcpu1, unchanged since vcpu0\'s last prune (history seq 10): the prune should have migrated it']);
    // Active: it stays with its holder whatever its target.
    w.m[b + IRQ.off.active] = 1;
    expect(apListAudit(h, 2, [])).toEqual([]);
    // An LR still in use, a record still marked in an LR: no fold cleared them.
    w.m[vcpuOff(w.g, 1) + VCPU.off.usedLrs] = 2;
    w.m[b + IRQ.off.onLr] = 1;
    expect(apListAudit(h, 2, [])).toEqual([
      'vcpu1 has 2 LR(s) in use at quiescence: its final exit did not fold them',
      `INTID 40 (record ${r}) is marked in an LR at quiescence: a fold did not clear it`,
    ]);
    // Leave the VM as it was for teardown.
    w.m[vcpuOff(w.g, 1) + VCPU.off.usedLrs] = 0;
    for (const f of ['onLr', 'active', 'enabled', 'pendingLatch'] as const) w.m[b + IRQ.off[f]] = 0;
    w.m[b + IRQ.off.vcpu] = -1;
    w.m[vb + VCPU.off.apHead] = -1;
    w.m[vb + VCPU.off.apTail] = -1;
    w.m[D.enabled] = 0;
  });
});
