/**
 * GICv3 distributor and redistributor frames, SGI generation and the v3 userspace groups
 * (spec §5.5, §6, §7.4). Expectations come from the spec, not from running the code.
 */
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../src/uapi/errno.js';
import { KVM_REQ_IRQ_PENDING, KVM_REQ_SLEEP, KVM_VGIC_IMP_REV_2, KVM_VGIC_IMP_REV_3, KVM_VGIC_IMP_REV_LATEST, KVM_VGIC_V3_REDIST_SIZE } from '../../src/uapi/kvm.js';
import { DIST, RDIST_REGION, VCPU } from '../../src/shm/layouts.js';
import { vcpuOff } from '../../src/shm/vm-memory.js';
import type { Host } from '../../src/vgic/host.js';
import { dw } from '../../src/vgic/host.js';
import { LEVEL } from '../../src/vgic/irq.js';
import { distUaccess, hasDistReg, hasRedistReg, redistUaccess, vgicMmioRead, vgicMmioWrite, vgicRedistOwner } from '../../src/vgic/mmio/dispatch.js';
import { apList, DIST_BASE, expectedIidr, irqField, makeVm, rec, REDIST_BASE, setIrqField, setVcpuField, vcpuField } from './mmio-helpers.js';

const CTLR = 0x0000, TYPER = 0x0004, IIDR = 0x0008, TYPER2 = 0x000c, ISENABLER = 0x0100, ISPENDR = 0x0200, ICPENDR = 0x0280;
const IPRIORITYR = 0x0400, ITARGETSR = 0x0800, ICFGR = 0x0c00, IROUTER = 0x6000, PIDR2 = 0xffe8;
const SGI = 0x10000;
const GICR_CTLR = 0x0000, GICR_IIDR = 0x0004, GICR_TYPER = 0x0008, GICR_WAKER = 0x0014;

const rd = (h: Host, v: number, off: number, len = 4) => vgicMmioRead(h, v, DIST_BASE + off, len);
const wr = (h: Host, v: number, off: number, val: number, len = 4) => vgicMmioWrite(h, v, DIST_BASE + off, len, val);
const rdBase = (t: number) => REDIST_BASE + t * KVM_VGIC_V3_REDIST_SIZE;
const rrd = (h: Host, v: number, t: number, off: number, len = 4) => vgicMmioRead(h, v, rdBase(t) + off, len);
const rwr = (h: Host, v: number, t: number, off: number, val: number, len = 4) => vgicMmioWrite(h, v, rdBase(t) + off, len, val);

describe('GICv3 distributor: identification and control', () => {
  it('IIDR, TYPER (ITLinesNumber, IDbits = 9 without ITS), TYPER2 and PIDR2', () => {
    const h = makeVm({ model: 3, vcpus: 2, nrSpis: 96 });
    expect(rd(h, 0, IIDR)).toBe(expectedIidr(KVM_VGIC_IMP_REV_LATEST));
    expect(rd(h, 0, TYPER)).toBe(((96 + 32) / 32 - 1) | (9 << 19));
    expect(rd(h, 0, TYPER2)).toBe(0);
    expect(rd(h, 0, PIDR2)).toBe(0x3b);
  });

  it('CTLR: ARE_NS and DS read as 1; EnableGrp1 is the distributor enable', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    const ARE = 1 << 4, DS = 1 << 6, G1 = 1 << 1;
    expect(rd(h, 0, CTLR)).toBe(ARE | DS);
    wr(h, 0, CTLR, G1);
    expect(h.m[dw(h, 'enabled')]).toBe(1);
    expect(rd(h, 0, CTLR)).toBe(G1 | ARE | DS);
    wr(h, 0, CTLR, 1); // EnableGrp0 alone does not enable
    expect(h.m[dw(h, 'enabled')]).toBe(0);
  });

  it('guest CTLR enabling kicks vCPUs with queued deliverable IRQs', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 1, 'pmr', 0xf8);
    wr(h, 0, CTLR, 2);
    rwr(h, 0, 1, SGI + ISPENDR, 1 << 9); // SGI 9 of vCPU 1 (SGIs are enabled)
    expect(apList(h, 1)).toEqual([rec(h, 1, 9)]);
    wr(h, 0, CTLR, 0);
    setVcpuField(h, 0, 'requests', 0);
    setVcpuField(h, 1, 'requests', 0);
    wr(h, 0, CTLR, 2);
    expect(vcpuField(h, 1, 'requests') & KVM_REQ_IRQ_PENDING).toBe(KVM_REQ_IRQ_PENDING);
    expect(vcpuField(h, 0, 'requests')).toBe(0);
  });

  it('userspace CTLR sets the enable without kicking; IIDR may change only Revision, to 2 or 3', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    setVcpuField(h, 0, 'pmr', 0xf8);
    wr(h, 0, CTLR, 2);
    rwr(h, 0, 0, SGI + ISPENDR, 1);
    wr(h, 0, CTLR, 0);
    setVcpuField(h, 0, 'requests', 0);
    distUaccess(h, 0, CTLR, true, 2);
    expect(h.m[dw(h, 'enabled')]).toBe(1);
    expect(vcpuField(h, 0, 'requests')).toBe(0);

    const iidr = distUaccess(h, 0, IIDR, false, 0);
    const withRev = (r: number) => ((iidr & ~0xf000) | (r << 12)) >>> 0;
    distUaccess(h, 0, IIDR, true, withRev(KVM_VGIC_IMP_REV_2));
    expect(h.m[dw(h, 'implRev')]).toBe(KVM_VGIC_IMP_REV_2);
    expect(rd(h, 0, IIDR)).toBe(expectedIidr(KVM_VGIC_IMP_REV_2));
    for (const bad of [withRev(4), withRev(1), (iidr ^ 0x10000) >>> 0]) {
      let err: unknown;
      try {
        distUaccess(h, 0, IIDR, true, bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KvmError);
      expect((err as KvmError).code).toBe('EINVAL');
    }
    distUaccess(h, 0, IIDR, true, withRev(KVM_VGIC_IMP_REV_3));
    expect(h.m[dw(h, 'implRev')]).toBe(KVM_VGIC_IMP_REV_3);
    expect(() => distUaccess(h, 0, TYPER2, true, 1)).toThrow(KvmError);
    distUaccess(h, 0, TYPER2, true, 0);
  });
});

describe('GICv3 distributor: per-IRQ registers', () => {
  it('INTIDs 0-31 are RAZ/WI in the distributor (they live in the redistributor)', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    expect(rd(h, 0, ISENABLER)).toBe(0); // although the SGIs are enabled
    wr(h, 0, ISENABLER, 1 << 20);
    expect(irqField(h, 0, 20, 'enabled')).toBe(0);
    wr(h, 0, IPRIORITYR + 4, 0xffffffff);
    expect(irqField(h, 0, 4, 'priority')).toBe(0);
    expect(rd(h, 0, ICFGR)).toBe(0);
    // INTID 32 onwards work.
    wr(h, 0, ISENABLER + 4, 1);
    expect(irqField(h, 0, 32, 'enabled')).toBe(1);
    expect(hasDistReg(h, ISENABLER)).toBe(true);
  });

  it('ITARGETSR is RAZ/WI with affinity routing', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    wr(h, 0, ITARGETSR + 32, 0x02020202);
    expect(rd(h, 0, ITARGETSR + 32)).toBe(0);
    expect(irqField(h, 0, 32, 'target')).toBe(0);
  });

  it('guest ISPENDR on a v3 SPI sets the latch and queues on its target', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    wr(h, 0, CTLR, 2);
    wr(h, 0, ISENABLER + 4, 1 << 1);
    wr(h, 0, IROUTER + 8 * 33, 1); // vCPU 1 (Aff0 = 1)
    wr(h, 1, ISPENDR + 4, 1 << 1);
    expect(irqField(h, 0, 33, 'pendingLatch')).toBe(1);
    expect(apList(h, 1)).toEqual([rec(h, 0, 33)]);
  });

  it('userspace ISPENDR: bit=1 sets the latch and queues, bit=0 clears it; reads show the latch only', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    wr(h, 0, CTLR, 2);
    wr(h, 0, ISENABLER + 4, 0b11);
    setIrqField(h, 0, 33, 'config', LEVEL);
    setIrqField(h, 0, 33, 'lineLevel', 1);
    distUaccess(h, 0, ISPENDR + 4, true, 0b01);
    expect(irqField(h, 0, 32, 'pendingLatch')).toBe(1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(0);
    // The level line of 33 makes it pending for the guest, but userspace sees the latch only.
    expect(rd(h, 0, ISPENDR + 4)).toBe(0b11);
    expect(distUaccess(h, 0, ISPENDR + 4, false, 0)).toBe(0b01);
    distUaccess(h, 0, ISPENDR + 4, true, 0);
    expect(irqField(h, 0, 32, 'pendingLatch')).toBe(0);
  });

  it('userspace ICPENDR is RAZ/WI', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    wr(h, 0, ISPENDR + 4, 1);
    expect(distUaccess(h, 0, ICPENDR + 4, false, 0)).toBe(0);
    distUaccess(h, 0, ICPENDR + 4, true, 1);
    expect(irqField(h, 0, 32, 'pendingLatch')).toBe(1);
    wr(h, 0, ICPENDR + 4, 1); // the guest can clear it
    expect(irqField(h, 0, 32, 'pendingLatch')).toBe(0);
  });

  it('INTIDs beyond 32 + nr_spis are RAZ/WI', () => {
    const h = makeVm({ model: 3, vcpus: 1, nrSpis: 32 });
    wr(h, 0, ISENABLER + 8, 1);
    expect(rd(h, 0, ISENABLER + 8)).toBe(0);
    wr(h, 0, IROUTER + 8 * 64, 1);
    expect(rd(h, 0, IROUTER + 8 * 64)).toBe(0);
    expect(hasDistReg(h, IROUTER + 8 * 64)).toBe(false);
    expect(hasDistReg(h, IROUTER + 8 * 63 + 4)).toBe(true);
  });
});

describe('GICv3 GICD_IROUTER', () => {
  it('routes to the vCPU with that affinity; upper word RAZ/WI; IRM and Aff3 dropped', () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    const off = IROUTER + 8 * 40;
    wr(h, 0, off, 2);
    expect(irqField(h, 0, 40, 'target')).toBe(2);
    expect(rd(h, 0, off)).toBe(2);
    expect(rd(h, 0, off + 4)).toBe(0);
    wr(h, 0, off, (1 << 31) | 1); // IRM set: ignored
    expect(rd(h, 0, off)).toBe(1);
    expect(irqField(h, 0, 40, 'target')).toBe(1);
    wr(h, 0, off + 4, 0xff); // Aff3: WI
    expect(rd(h, 0, off + 4)).toBe(0);
    // 64-bit access: the lower word is taken, the upper ignored.
    wr(h, 0, off, 0x0000_00ff_0000_0002, 8);
    expect(rd(h, 0, off, 8)).toBe(2);
    expect(irqField(h, 0, 40, 'target')).toBe(2);
  });

  it('an affinity with no vCPU leaves the SPI without a target (never delivered)', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    wr(h, 0, CTLR, 2);
    wr(h, 0, ISENABLER + 4, 1 << 8);
    wr(h, 0, IROUTER + 8 * 40, 0x010000); // Aff2 = 1: nobody
    expect(irqField(h, 0, 40, 'target')).toBe(-1);
    expect(rd(h, 0, IROUTER + 8 * 40)).toBe(0x010000);
    wr(h, 0, ISPENDR + 4, 1 << 8);
    expect(irqField(h, 0, 40, 'vcpu')).toBe(-1);
  });

  it('retargeting does not requeue', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    wr(h, 0, CTLR, 2);
    wr(h, 0, ISENABLER + 4, 1);
    wr(h, 0, ISPENDR + 4, 1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(0);
    wr(h, 0, IROUTER + 8 * 32, 1);
    expect(irqField(h, 0, 32, 'target')).toBe(1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(0);
  });
});

describe('GICv3 redistributor', () => {
  it('GICR_TYPER: Processor_Number, affinity in the upper word, Last only on the last frame', () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    for (let t = 0; t < 3; t++) {
      const lo = rrd(h, 0, t, GICR_TYPER);
      const hi = rrd(h, 0, t, GICR_TYPER + 4);
      expect((lo >>> 8) & 0xffff).toBe(t);
      expect(lo & (1 << 4)).toBe(t === 2 ? 1 << 4 : 0);
      expect(lo & 1).toBe(0); // no PLPIS without an ITS
      expect(hi).toBe(vcpuField(h, t, 'mpidr'));
      expect(rrd(h, 0, t, GICR_TYPER, 8)).toBe(hi * 2 ** 32 + lo);
    }
    redistUaccess(h, 1, GICR_TYPER, true, 0); // writes ignored
    expect((redistUaccess(h, 1, GICR_TYPER, false, 0) >>> 8) & 0xffff).toBe(1);
  });

  it('GICR_TYPER.Last: a full region followed by a populated contiguous region is not last', () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    // Two regions: region 0 holds vCPU 0 (full), region 1 starts where it ends and holds 1 and 2.
    const region = (i: number) => h.g.distBase + DIST.off.regions + i * RDIST_REGION.size;
    const setRegion = (i: number, base: number, count: number, free: number) => {
      h.f[(region(i) + RDIST_REGION.off.base) / 2] = base;
      h.m[region(i) + RDIST_REGION.off.count] = count;
      h.m[region(i) + RDIST_REGION.off.freeIndex] = free;
      h.m[region(i) + RDIST_REGION.off.index] = i;
    };
    setRegion(0, REDIST_BASE, 1, 1);
    setRegion(1, REDIST_BASE + KVM_VGIC_V3_REDIST_SIZE, 2, 2);
    h.m[dw(h, 'nrRdistRegions')] = 2;
    const place = (v: number, r: number, i: number) => {
      setVcpuField(h, v, 'rdRegion', r);
      setVcpuField(h, v, 'rdIndex', i);
    };
    place(0, 0, 0);
    place(1, 1, 0);
    place(2, 1, 1);
    const last = (t: number) => (rrd(h, 0, t, GICR_TYPER) & (1 << 4)) !== 0;
    expect([last(0), last(1), last(2)]).toEqual([false, false, true]);
    expect(vgicRedistOwner(h, rdBase(2) + 8)).toBe(2);
    // Move region 1 away (and its frames with it): region 0's frame now ends a contiguous run.
    const far = REDIST_BASE + 16 * KVM_VGIC_V3_REDIST_SIZE;
    setRegion(1, far, 2, 2);
    h.f[(vcpuOff(h.g, 1) + VCPU.off.rdBase) / 2] = far;
    h.f[(vcpuOff(h.g, 2) + VCPU.off.rdBase) / 2] = far + KVM_VGIC_V3_REDIST_SIZE;
    expect(last(0)).toBe(true);
    expect(vgicRedistOwner(h, far + KVM_VGIC_V3_REDIST_SIZE + 4)).toBe(2);
    expect(vgicRedistOwner(h, rdBase(1))).toBe(-1);
  });

  it('GICR_CTLR reads IR|CES at revision 3, IIDR is product K + ARM, WAKER RAZ/WI, PIDR2 0x3b', () => {
    const h = makeVm({ model: 3, vcpus: 1 });
    expect(rrd(h, 0, 0, GICR_CTLR)).toBe((1 << 2) | (1 << 1));
    h.m[dw(h, 'implRev')] = KVM_VGIC_IMP_REV_2;
    expect(rrd(h, 0, 0, GICR_CTLR)).toBe(0);
    expect(rrd(h, 0, 0, GICR_IIDR)).toBe(((0x4b << 24) | 0x43b) >>> 0);
    rwr(h, 0, 0, GICR_WAKER, 2);
    expect(rrd(h, 0, 0, GICR_WAKER)).toBe(0);
    expect(rrd(h, 0, 0, PIDR2)).toBe(0x3b);
  });

  it('SGI frame registers are the redistributor vCPU’s private IRQs, whoever accesses them', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    expect(rrd(h, 0, 1, SGI + ISENABLER)).toBe(0xffff);
    rwr(h, 0, 1, SGI + ISENABLER, 1 << 27);
    expect(irqField(h, 1, 27, 'enabled')).toBe(1);
    expect(irqField(h, 0, 27, 'enabled')).toBe(0);
    rwr(h, 1, 1, SGI + IPRIORITYR + 27, 0xff, 1);
    expect(irqField(h, 1, 27, 'priority')).toBe(0xf8);
    expect(rrd(h, 0, 1, SGI + ICFGR)).toBe(0xaaaaaaaa);
    expect(rrd(h, 0, 1, SGI + ICFGR + 4)).toBe(0);
    rwr(h, 0, 1, SGI + ICFGR + 4, 0xffffffff);
    expect(rrd(h, 0, 1, SGI + ICFGR + 4)).toBe(0);
    // v3 SGIs can be made pending through ISPENDR0 (unlike v2).
    rwr(h, 0, 1, SGI + ISPENDR, 1 << 3);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(1);
    // Userspace REDIST_REGS see the same registers.
    expect(redistUaccess(h, 1, SGI + ISPENDR, false, 0)).toBe(1 << 3);
    expect(hasRedistReg(h, SGI + ISENABLER)).toBe(true);
    expect(hasRedistReg(h, SGI + 0x0800)).toBe(false);
  });

  it('ISACTIVER0 from a vCPU other than the owner halts the guest; from the owner it does not', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 0, 'requests', 0);
    setVcpuField(h, 1, 'requests', 0);
    rwr(h, 1, 1, SGI + 0x0300, 1 << 5); // owner
    expect(irqField(h, 1, 5, 'active')).toBe(1);
    expect(vcpuField(h, 0, 'requests') & KVM_REQ_SLEEP).toBe(0);
    rwr(h, 0, 1, SGI + 0x0300, 1 << 6); // not the owner
    expect(irqField(h, 1, 6, 'active')).toBe(1);
    expect(vcpuField(h, 0, 'requests') & KVM_REQ_SLEEP).toBe(KVM_REQ_SLEEP);
    expect(vcpuField(h, 1, 'requests') & KVM_REQ_SLEEP).toBe(KVM_REQ_SLEEP);
    expect(vcpuField(h, 0, 'pause') | vcpuField(h, 1, 'pause')).toBe(0);
    expect(rrd(h, 0, 1, SGI + 0x0380)).toBe((1 << 5) | (1 << 6));
  });

  it('vgicRedistOwner finds the vCPU whose 128 KiB frame pair holds the address', () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    expect(vgicRedistOwner(h, rdBase(0))).toBe(0);
    expect(vgicRedistOwner(h, rdBase(2) + SGI + 0x100)).toBe(2);
    expect(vgicRedistOwner(h, rdBase(1) + KVM_VGIC_V3_REDIST_SIZE - 4)).toBe(1);
    expect(vgicRedistOwner(h, rdBase(3))).toBe(-1);
    expect(vgicRedistOwner(h, REDIST_BASE - 4)).toBe(-1);
    expect(vgicRedistOwner(h, DIST_BASE)).toBe(-1);
    expect(vgicMmioRead(h, 0, rdBase(3) + GICR_IIDR, 4)).toBe(0);
  });
});
