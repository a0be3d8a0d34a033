/**
 * GICv2 distributor frame: guest MMIO and DIST_REGS/CPU_REGS userspace access (spec §5.3, §5.4, §6,
 * §7.4). Expectations come from the spec's register descriptions, not from running the code.
 */
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../src/uapi/errno.js';
import { KVM_REQ_IRQ_PENDING, KVM_REQ_SLEEP, KVM_VGIC_IMP_REV_LATEST } from '../../src/uapi/kvm.js';
import { dw } from '../../src/vgic/host.js';
import { EDGE, LEVEL } from '../../src/vgic/irq.js';
import { cpuRegsUaccess, distUaccess, hasCpuReg, hasDistReg, vgicMmioRead, vgicMmioWrite } from '../../src/vgic/mmio/dispatch.js';
import { apList, DIST_BASE, expectedIidr, irqField, makeVm, rec, setIrqField, setVcpuField, vcpuField } from './mmio-helpers.js';

const CTLR = 0x000, TYPER = 0x004, IIDR = 0x008, IGROUPR = 0x080, ISENABLER = 0x100, ICENABLER = 0x180;
const ISPENDR = 0x200, ICPENDR = 0x280, ISACTIVER = 0x300, IPRIORITYR = 0x400, ITARGETSR = 0x800;
const ICFGR = 0xc00, SGIR = 0xf00, CPENDSGIR = 0xf10, SPENDSGIR = 0xf20;

const rd = (h: ReturnType<typeof makeVm>, v: number, off: number, len = 4) => vgicMmioRead(h, v, DIST_BASE + off, len);
const wr = (h: ReturnType<typeof makeVm>, v: number, off: number, val: number, len = 4) => vgicMmioWrite(h, v, DIST_BASE + off, len, val);

describe('GICv2 distributor: identification', () => {
  it('GICD_IIDR is product K, the implementation revision, implementer ARM; guest writes ignored', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    expect(rd(h, 0, IIDR)).toBe(expectedIidr(KVM_VGIC_IMP_REV_LATEST));
    wr(h, 0, IIDR, 0);
    expect(rd(h, 1, IIDR)).toBe(expectedIidr(KVM_VGIC_IMP_REV_LATEST));
  });

  it('GICD_TYPER: ITLinesNumber = (nr_spis+32)/32 - 1, CPUNumber = online vCPUs - 1', () => {
    const h = makeVm({ model: 2, vcpus: 3, nrSpis: 64 });
    expect(rd(h, 0, TYPER)).toBe(((3 - 1) << 5) | ((64 + 32) / 32 - 1));
  });

  it('userspace IIDR write must equal the current value, and then makes IGROUPR user-writable', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    const iidr = distUaccess(h, 0, IIDR, false, 0);
    // Before the IIDR write, userspace IGROUPR writes are ignored.
    distUaccess(h, 0, IGROUPR + 4, true, 1);
    expect(irqField(h, 0, 32, 'group')).toBe(0);
    expect(() => distUaccess(h, 0, IIDR, true, iidr ^ 0x1000)).toThrow(KvmError);
    try {
      distUaccess(h, 0, IIDR, true, iidr + 1);
    } catch (e) {
      expect((e as KvmError).code).toBe('EINVAL');
    }
    expect(h.m[dw(h, 'v2GroupsUserWritable')]).toBe(0);
    distUaccess(h, 0, IIDR, true, iidr);
    expect(h.m[dw(h, 'v2GroupsUserWritable')]).toBe(1);
    distUaccess(h, 0, IGROUPR + 4, true, 1);
    expect(irqField(h, 0, 32, 'group')).toBe(1);
    expect(distUaccess(h, 0, IGROUPR + 4, false, 0)).toBe(1);
  });

  it('guest IGROUPR writes are allowed for GICv2', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    wr(h, 0, IGROUPR + 4, 0b10);
    expect(irqField(h, 0, 33, 'group')).toBe(1);
    expect(rd(h, 0, IGROUPR + 4)).toBe(0b10);
  });
});

describe('GICv2 distributor: enable, pending, priority, config', () => {
  it('ISENABLER/ICENABLER round trip; SGIs start enabled, PPIs disabled', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    expect(rd(h, 0, ISENABLER)).toBe(0xffff); // 16 SGIs enabled, PPIs not (spec §1.6)
    wr(h, 0, ISENABLER + 4, 1 << 8); // INTID 40
    expect(irqField(h, 0, 40, 'enabled')).toBe(1);
    expect(rd(h, 0, ISENABLER + 4)).toBe(1 << 8);
    expect(rd(h, 0, ICENABLER + 4)).toBe(1 << 8);
    wr(h, 0, ICENABLER + 4, 1 << 8);
    expect(irqField(h, 0, 40, 'enabled')).toBe(0);
    expect(rd(h, 0, ISENABLER + 4)).toBe(0);
    // Writing zeros changes nothing.
    wr(h, 0, ISENABLER + 4, 1 << 9);
    wr(h, 0, ICENABLER + 4, 0);
    expect(irqField(h, 0, 41, 'enabled')).toBe(1);
  });

  it('private registers are banked per accessing vCPU', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 1, ISENABLER, 1 << 27); // PPI 27 of vCPU 1
    expect(irqField(h, 1, 27, 'enabled')).toBe(1);
    expect(irqField(h, 0, 27, 'enabled')).toBe(0);
    expect(rd(h, 0, ISENABLER) & (1 << 27)).toBe(0);
  });

  it('ISPENDR sets the latch and queues on the target vCPU with an IRQ_PENDING request', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    wr(h, 0, CTLR, 1);
    wr(h, 0, ISENABLER + 4, 1 << 8);
    wr(h, 0, ITARGETSR + 40, 1 << 2, 1); // target vCPU 2
    setVcpuField(h, 2, 'requests', 0);
    wr(h, 1, ISPENDR + 4, 1 << 8);
    expect(irqField(h, 0, 40, 'pendingLatch')).toBe(1);
    expect(irqField(h, 0, 40, 'vcpu')).toBe(2);
    expect(apList(h, 2)).toEqual([rec(h, 0, 40)]);
    expect(vcpuField(h, 2, 'requests') & KVM_REQ_IRQ_PENDING).toBe(KVM_REQ_IRQ_PENDING);
    expect(rd(h, 0, ISPENDR + 4)).toBe(1 << 8);
    expect(rd(h, 0, ICPENDR + 4)).toBe(1 << 8);
  });

  it('ICPENDR clears the latch but a high level line stays pending', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    wr(h, 0, ISPENDR + 4, 0b11); // INTIDs 32, 33
    setIrqField(h, 0, 33, 'config', LEVEL);
    setIrqField(h, 0, 33, 'lineLevel', 1);
    wr(h, 0, ICPENDR + 4, 0b11);
    expect(irqField(h, 0, 32, 'pendingLatch')).toBe(0);
    expect(irqField(h, 0, 33, 'pendingLatch')).toBe(0);
    expect(rd(h, 0, ISPENDR + 4)).toBe(0b10);
  });

  it('pending while the distributor is disabled is not queued (the oracle says nowhere)', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    wr(h, 0, ISENABLER + 4, 1);
    wr(h, 0, ISPENDR + 4, 1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(-1);
    expect(apList(h, 0)).toEqual([]);
  });

  it('IPRIORITYR keeps the 5 implemented bits, byte and word accesses', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    wr(h, 0, IPRIORITYR + 33, 0xff, 1);
    expect(irqField(h, 0, 33, 'priority')).toBe(0xf8);
    expect(rd(h, 0, IPRIORITYR + 33, 1)).toBe(0xf8);
    wr(h, 0, IPRIORITYR + 36, 0x12345678);
    expect(rd(h, 0, IPRIORITYR + 36)).toBe((0x12345678 & 0xf8f8f8f8) >>> 0);
    expect(irqField(h, 0, 39, 'priority')).toBe(0x12 & 0xf8);
  });

  it('ICFGR: SGIs edge and PPIs level are read-only; SPIs default edge and are writable', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    expect(rd(h, 0, ICFGR)).toBe(0xaaaaaaaa); // 16 SGIs, bit 2i+1 = edge
    expect(rd(h, 0, ICFGR + 4)).toBe(0); // 16 PPIs, level
    wr(h, 0, ICFGR, 0);
    wr(h, 0, ICFGR + 4, 0xaaaaaaaa);
    expect(rd(h, 0, ICFGR)).toBe(0xaaaaaaaa);
    expect(rd(h, 0, ICFGR + 4)).toBe(0);
    expect(rd(h, 0, ICFGR + 8)).toBe(0xaaaaaaaa); // INTIDs 32-47 default edge
    wr(h, 0, ICFGR + 8, 0xaaaaaaa8); // INTID 32 level, others edge
    expect(irqField(h, 0, 32, 'config')).toBe(LEVEL);
    expect(irqField(h, 0, 33, 'config')).toBe(EDGE);
  });
});

describe('GICv2 distributor: ITARGETSR', () => {
  it('masks SPI targets to online vCPUs and targets the lowest one (vCPU 0 when none)', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    wr(h, 0, ITARGETSR + 40, 0xff, 1);
    expect(irqField(h, 0, 40, 'targets')).toBe(0b111);
    expect(irqField(h, 0, 40, 'target')).toBe(0);
    wr(h, 0, ITARGETSR + 40, 0b110, 1);
    expect(irqField(h, 0, 40, 'target')).toBe(1);
    wr(h, 0, ITARGETSR + 40, 0xf8, 1);
    expect(irqField(h, 0, 40, 'targets')).toBe(0);
    expect(irqField(h, 0, 40, 'target')).toBe(0);
    wr(h, 0, ITARGETSR + 44, 0x04020104);
    expect(rd(h, 0, ITARGETSR + 44)).toBe(0x04020104);
    expect([44, 45, 46, 47].map((i) => irqField(h, 0, i, 'target'))).toEqual([2, 0, 1, 2]);
  });

  it('private bytes read as the accessing vCPU and are read-only', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    expect(rd(h, 1, ITARGETSR + 16, 1)).toBe(1 << 1);
    wr(h, 1, ITARGETSR + 16, 1, 1);
    expect(rd(h, 1, ITARGETSR + 16, 1)).toBe(1 << 1);
  });

  it('retargeting does not requeue an IRQ already on an ap_list', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 0, CTLR, 1);
    wr(h, 0, ISENABLER + 4, 1);
    wr(h, 0, ISPENDR + 4, 1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(0);
    wr(h, 0, ITARGETSR + 32, 2, 1);
    expect(irqField(h, 0, 32, 'target')).toBe(1);
    expect(irqField(h, 0, 32, 'vcpu')).toBe(0);
    expect(apList(h, 1)).toEqual([]);
  });
});

describe('GICv2 SGIs (spec §5.4)', () => {
  it('GICD_SGIR target-list filter sets pending and the sender as source', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    wr(h, 0, SGIR, (0b110 << 16) | 5);
    for (const t of [1, 2]) {
      expect(irqField(h, t, 5, 'pendingLatch')).toBe(1);
      expect(irqField(h, t, 5, 'source')).toBe(1 << 0);
    }
    expect(irqField(h, 0, 5, 'pendingLatch')).toBe(0);
    expect(rd(h, 0, SGIR)).toBe(0);
  });

  it('filter 1 = all online but the sender, 2 = the sender only, 3 = ignored', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    wr(h, 1, SGIR, (1 << 24) | 3);
    expect([0, 1, 2].map((t) => irqField(h, t, 3, 'source'))).toEqual([1 << 1, 0, 1 << 1]);
    wr(h, 2, SGIR, (2 << 24) | (0xff << 16) | 4);
    expect([0, 1, 2].map((t) => irqField(h, t, 4, 'source'))).toEqual([0, 0, 1 << 2]);
    wr(h, 0, SGIR, (3 << 24) | (0xff << 16) | 6);
    expect([0, 1, 2].map((t) => irqField(h, t, 6, 'pendingLatch'))).toEqual([0, 0, 0]);
  });

  it('vCPUs created out of id order (ids 0, 2, 1): target-list bits are creation indices, the source bit and the self/others filters use the vcpu_id (vgic_mmio_write_sgir)', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    // As createVcpu(0), createVcpu(2), createVcpu(1) leaves them: index 1 has id 2, index 2 id 1.
    setVcpuField(h, 1, 'vcpuId', 2);
    setVcpuField(h, 2, 'vcpuId', 1);
    wr(h, 1, SGIR, (1 << 16) | 7); // target list: CPU interface 0
    expect([0, 1, 2].map((t) => irqField(h, t, 7, 'source'))).toEqual([1 << 2, 0, 0]);
    // "All but self" clears the sender's vcpu_id bit (2) from the online mask 0b111: index 2 is
    // skipped, index 1 (the sender itself) is not.
    wr(h, 1, SGIR, (1 << 24) | 8);
    expect([0, 1, 2].map((t) => irqField(h, t, 8, 'source'))).toEqual([1 << 2, 1 << 2, 0]);
    // "Self" is the sender's vcpu_id bit, as an index: index 2 gets it.
    wr(h, 1, SGIR, (2 << 24) | 9);
    expect([0, 1, 2].map((t) => irqField(h, t, 9, 'source'))).toEqual([0, 0, 1 << 2]);
  });

  it('targets that are not online are skipped', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 0, SGIR, (0xff << 16) | 1);
    expect(irqField(h, 0, 1, 'source')).toBe(1);
    expect(irqField(h, 1, 1, 'source')).toBe(1);
    expect(irqField(h, 2, 1, 'source')).toBe(0);
    expect(irqField(h, 3, 1, 'source')).toBe(0);
  });

  it('SGIR queues onto the target with a request', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 0, CTLR, 1);
    setVcpuField(h, 1, 'requests', 0);
    wr(h, 0, SGIR, (0b10 << 16) | 7);
    expect(apList(h, 1)).toEqual([rec(h, 1, 7)]);
    expect(vcpuField(h, 1, 'requests') & KVM_REQ_IRQ_PENDING).toBe(KVM_REQ_IRQ_PENDING);
  });

  it('SPENDSGIR adds sources, CPENDSGIR removes them; pending ends with the last source', () => {
    const h = makeVm({ model: 2, vcpus: 3 });
    wr(h, 0, SPENDSGIR + 2, 0b101, 1); // SGI 2 of vCPU 0 from vCPUs 0 and 2
    expect(irqField(h, 0, 2, 'source')).toBe(0b101);
    expect(irqField(h, 0, 2, 'pendingLatch')).toBe(1);
    expect(rd(h, 0, SPENDSGIR)).toBe(0b101 << 16);
    expect(rd(h, 0, CPENDSGIR)).toBe(0b101 << 16);
    wr(h, 0, CPENDSGIR, 0b001 << 16);
    expect(irqField(h, 0, 2, 'source')).toBe(0b100);
    expect(irqField(h, 0, 2, 'pendingLatch')).toBe(1);
    wr(h, 0, CPENDSGIR + 2, 0b100, 1);
    expect(irqField(h, 0, 2, 'source')).toBe(0);
    expect(irqField(h, 0, 2, 'pendingLatch')).toBe(0);
  });

  it('guest ISPENDR/ICPENDR SGI bits are ignored; userspace ISPENDR uses the vCPU itself as source', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 1, ISPENDR, 1 << 3);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(0);
    distUaccess(h, 1, ISPENDR, true, 1 << 3);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(1);
    expect(irqField(h, 1, 3, 'source')).toBe(1 << 1);
    wr(h, 1, ICPENDR, 1 << 3);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(1);
    // Userspace ICPENDR wipes every source.
    wr(h, 0, SPENDSGIR + 3, 0b01, 1);
    distUaccess(h, 1, ICPENDR, true, 1 << 3);
    expect(irqField(h, 1, 3, 'source')).toBe(0);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(0);
  });

  it('setting an SGI active records the requester as active source', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    wr(h, 1, ISACTIVER, 1 << 4);
    expect(irqField(h, 1, 4, 'active')).toBe(1);
    expect(irqField(h, 1, 4, 'activeSource')).toBe(1);
  });
});

describe('GICv2 GICD_CTLR', () => {
  it('enabling kicks only vCPUs with a deliverable IRQ already on their ap_list', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    setVcpuField(h, 0, 'pmr', 0xf8);
    setVcpuField(h, 1, 'pmr', 0xf8);
    wr(h, 0, CTLR, 1);
    wr(h, 0, ISENABLER + 4, 1);
    wr(h, 0, ISPENDR + 4, 1); // queued on vCPU 0 (default SPI target)
    wr(h, 0, CTLR, 0);
    expect(rd(h, 0, CTLR)).toBe(0);
    setVcpuField(h, 0, 'requests', 0);
    setVcpuField(h, 1, 'requests', 0);
    wr(h, 0, CTLR, 1);
    expect(rd(h, 0, CTLR)).toBe(1);
    expect(h.m[dw(h, 'enabled')]).toBe(1);
    expect(vcpuField(h, 0, 'requests') & KVM_REQ_IRQ_PENDING).toBe(KVM_REQ_IRQ_PENDING);
    expect(vcpuField(h, 1, 'requests')).toBe(0);
    // 1 -> 1 is not a transition: no kick.
    setVcpuField(h, 0, 'requests', 0);
    wr(h, 0, CTLR, 1);
    expect(vcpuField(h, 0, 'requests')).toBe(0);
  });
});

describe('GICv2 ISACTIVER halts the guest for SPIs', () => {
  it('sets active, posts KVM_REQ_SLEEP to every vCPU and clears pause again', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    setVcpuField(h, 0, 'requests', 0);
    setVcpuField(h, 1, 'requests', 0);
    wr(h, 0, ISACTIVER + 4, 1 << 2);
    expect(irqField(h, 0, 34, 'active')).toBe(1);
    expect(rd(h, 0, ISACTIVER + 4)).toBe(1 << 2);
    for (const v of [0, 1]) {
      expect(vcpuField(h, v, 'requests') & KVM_REQ_SLEEP).toBe(KVM_REQ_SLEEP);
      expect(vcpuField(h, v, 'pause')).toBe(0);
    }
    wr(h, 0, ISACTIVER + 0x80 + 4, 1 << 2); // ICACTIVER1
    expect(irqField(h, 0, 34, 'active')).toBe(0);
  });

  it('a v2 private IRQ does not halt (only its own vCPU can reach it)', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    setVcpuField(h, 0, 'requests', 0);
    wr(h, 0, ISACTIVER, 1 << 20);
    expect(irqField(h, 0, 20, 'active')).toBe(1);
    expect(vcpuField(h, 0, 'requests') & KVM_REQ_SLEEP).toBe(0);
  });

  it('userspace active writes neither halt nor need the guest', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    setVcpuField(h, 1, 'requests', 0);
    distUaccess(h, 0, ISACTIVER + 4, true, 1);
    expect(irqField(h, 0, 32, 'active')).toBe(1);
    expect(vcpuField(h, 1, 'requests') & KVM_REQ_SLEEP).toBe(0);
    expect(distUaccess(h, 0, ISACTIVER + 4, false, 0)).toBe(1);
  });
});

describe('GICv2 general access rules (spec §6)', () => {
  it('wrong widths and misaligned accesses read 0 and ignore writes', () => {
    const h = makeVm({ model: 2, vcpus: 1 });
    expect(rd(h, 0, IIDR, 2)).toBe(0);
    expect(rd(h, 0, IIDR, 1)).toBe(0);
    expect(rd(h, 0, IIDR, 8)).toBe(0);
    expect(rd(h, 0, IIDR + 1, 4)).toBe(0);
    wr(h, 0, ISENABLER + 4, 1, 1); // byte write to a 32-bit-only register
    expect(irqField(h, 0, 32, 'enabled')).toBe(0);
    wr(h, 0, IPRIORITYR + 34, 0xf0f0, 2);
    expect(irqField(h, 0, 34, 'priority')).toBe(0);
    wr(h, 0, IPRIORITYR + 33, 0xffffffff, 4); // misaligned word
    expect(irqField(h, 0, 33, 'priority')).toBe(0);
  });

  it('per-IRQ registers beyond 32 + nr_spis are RAZ/WI', () => {
    const h = makeVm({ model: 2, vcpus: 1, nrSpis: 64 }); // INTIDs 0..95
    wr(h, 0, ISENABLER + 12, 0xffffffff); // INTIDs 96..127
    expect(rd(h, 0, ISENABLER + 12)).toBe(0);
    wr(h, 0, IPRIORITYR + 96, 0xff, 1);
    expect(rd(h, 0, IPRIORITYR + 96, 1)).toBe(0);
    // The last valid word still works.
    wr(h, 0, ISENABLER + 8, 1 << 31);
    expect(irqField(h, 0, 95, 'enabled')).toBe(1);
  });

  it('unimplemented offsets: uaccess reads 0 and ignores writes; has_attr says no', () => {
    const h = makeVm({ model: 2, vcpus: 1, nrSpis: 64 });
    expect(distUaccess(h, 0, 0xf30, false, 0)).toBe(0);
    expect(distUaccess(h, 0, 0xf30, true, 5)).toBe(0);
    expect(hasDistReg(h, CTLR)).toBe(true);
    expect(hasDistReg(h, IPRIORITYR + 32)).toBe(true);
    expect(hasDistReg(h, IIDR + 2)).toBe(false);
    expect(hasDistReg(h, 0xf30)).toBe(false);
    expect(hasDistReg(h, ISENABLER + 12)).toBe(false);
  });
});

describe('GICv2 CPU_REGS (spec §5.3)', () => {
  it('PMR is the 5-bit VMPriMask, CTLR maps the VMCR bits, IIDR identifies KVM v2', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    cpuRegsUaccess(h, 1, 0x04, true, 0x1f);
    expect(vcpuField(h, 1, 'pmr')).toBe(0xf8);
    expect(cpuRegsUaccess(h, 1, 0x04, false, 0)).toBe(0x1f);
    setVcpuField(h, 1, 'pmr', 0x80);
    expect(cpuRegsUaccess(h, 1, 0x04, false, 0)).toBe(0x80 >> 3);
    const ctlr = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 9);
    cpuRegsUaccess(h, 1, 0x00, true, ctlr);
    expect([vcpuField(h, 1, 'eng0'), vcpuField(h, 1, 'eng1'), vcpuField(h, 1, 'cbpr'), vcpuField(h, 1, 'eoiMode')]).toEqual([1, 1, 1, 1]);
    expect(cpuRegsUaccess(h, 1, 0x00, false, 0)).toBe(ctlr);
    expect(vcpuField(h, 0, 'eng0')).toBe(0);
    expect(cpuRegsUaccess(h, 0, 0xfc, false, 0)).toBe(((0x4b << 20) | (2 << 16) | 0x43b) >>> 0);
    cpuRegsUaccess(h, 0, 0x08, true, 3);
    cpuRegsUaccess(h, 0, 0x1c, true, 4);
    expect(cpuRegsUaccess(h, 0, 0x08, false, 0)).toBe(3);
    expect(cpuRegsUaccess(h, 0, 0x1c, false, 0)).toBe(4);
    cpuRegsUaccess(h, 0, 0xd0, true, 0x5);
    expect(cpuRegsUaccess(h, 0, 0xd0, false, 0)).toBe(0x5);
    cpuRegsUaccess(h, 0, 0xd4, true, 0xff);
    expect(cpuRegsUaccess(h, 0, 0xd4, false, 0)).toBe(0);
    expect(hasCpuReg(h, 0xd0)).toBe(true);
    expect(hasCpuReg(h, 0xdc)).toBe(true);
    expect(hasCpuReg(h, 0x0c)).toBe(false); // IAR is not part of the saved state
    expect(cpuRegsUaccess(h, 0, 0x0c, false, 0)).toBe(0);
  });
});
