/**
 * GICv3 CPU interface system registers (table, encodings, guest access through GuestCpu, SGI
 * generation, CPU_SYSREGS userspace access) and LEVEL_INFO (spec §5.1, §5.5, §7.4).
 */
import { describe, expect, it } from 'vitest';
import { GuestCpu, type UserMmioHandler } from '../../src/guest/guest-cpu.js';
import { KvmError } from '../../src/uapi/errno.js';
import { KVM_REQ_IRQ_PENDING } from '../../src/uapi/kvm.js';
import { VcpuRunner } from '../../src/kvm/vcpu-runner.js';
import type { Host } from '../../src/vgic/host.js';
import { LEVEL } from '../../src/vgic/irq.js';
import { levelInfoUaccess, vgicMmioWrite } from '../../src/vgic/mmio/dispatch.js';
import { hasSysreg, sysregEncoding, sysregUaccess, vgicV3DispatchSgi } from '../../src/vgic/sysregs.js';
import { SYSREGS_BY_NAME } from '../../src/kvm/sys-regs.js';
import { apList, DIST_BASE, irqField, makeVm, rec, setIrqField, setVcpuField, vcpuField } from './mmio-helpers.js';

/** ICC_SGI1R_EL1 value: Aff3 [55:48], IRM [40], Aff2 [39:32], INTID [27:24], Aff1 [23:16], list [15:0]. */
function sgiValue(o: { intid: number; list?: number; aff1?: number; aff2?: number; aff3?: number; irm?: boolean }): bigint {
  return (
    (BigInt(o.aff3 ?? 0) << 48n) |
    (o.irm ? 1n << 40n : 0n) |
    (BigInt(o.aff2 ?? 0) << 32n) |
    (BigInt(o.intid) << 24n) |
    (BigInt(o.aff1 ?? 0) << 16n) |
    BigInt(o.list ?? 0)
  );
}

const noUserMmio: UserMmioHandler = {
  read: () => 0,
  write: () => {},
};

/** Run vCPU v's KVM_RUN on this thread (no worker) and hand back its GuestCpu. */
function runVcpu(h: Host, v: number, nrVcpus: number): { cpu: GuestCpu; done: () => void } {
  const r = new VcpuRunner(h, v);
  r.kvmRunEnter();
  return { cpu: new GuestCpu(r, nrVcpus, noUserMmio), done: () => r.kvmRunReturn() };
}

describe('ICC system register table', () => {
  it('encodings are packed op0<<14 | op1<<11 | crn<<7 | crm<<3 | op2', () => {
    const enc = (n: string) => SYSREGS_BY_NAME.get(n)!.enc;
    expect(enc('ICC_PMR_EL1')).toBe((3 << 14) | (0 << 11) | (4 << 7) | (6 << 3) | 0);
    expect(enc('ICC_SGI1R_EL1')).toBe((3 << 14) | (0 << 11) | (12 << 7) | (11 << 3) | 5);
    expect(enc('ICC_ASGI1R_EL1')).toBe((3 << 14) | (1 << 11) | (12 << 7) | (11 << 3) | 6);
    expect(enc('ICC_SGI0R_EL1')).toBe((3 << 14) | (2 << 11) | (12 << 7) | (11 << 3) | 7);
    expect(enc('ICC_AP0R2_EL1')).toBe(sysregEncoding(3, 0, 12, 8, 6));
    expect(enc('ICC_AP1R3_EL1')).toBe(sysregEncoding(3, 0, 12, 9, 3));
    expect(enc('ICC_IGRPEN1_EL1')).toBe(sysregEncoding(3, 0, 12, 12, 7));
    for (const n of ['ICC_SGI1R_EL1', 'ICC_ASGI1R_EL1', 'ICC_SGI0R_EL1']) expect(SYSREGS_BY_NAME.get(n)!.trap).toBe(true);
    expect(SYSREGS_BY_NAME.get('ICC_IAR1_EL1')!.trap).toBeFalsy();
    expect(new Set([...SYSREGS_BY_NAME.values()].map((r) => r.enc)).size).toBe(SYSREGS_BY_NAME.size);
  });

  it('CPU_SYSREGS: state registers only; AArch32 encodings are not present', () => {
    expect(hasSysreg(sysregEncoding(3, 0, 4, 6, 0))).toBe(true); // PMR
    expect(hasSysreg(sysregEncoding(3, 0, 12, 12, 4))).toBe(true); // CTLR
    expect(hasSysreg(sysregEncoding(3, 0, 12, 12, 0))).toBe(false); // IAR1: not state
    expect(hasSysreg(sysregEncoding(0, 0, 12, 12, 4))).toBe(false); // AArch32 encoding
    const h = makeVm({ model: 3, vcpus: 1 });
    let err: unknown;
    try {
      sysregUaccess(h, 0, sysregEncoding(0, 0, 4, 6, 0), false, 0n);
    } catch (e) {
      err = e;
    }
    expect((err as KvmError).code).toBe('ENXIO');
  });

  it('CPU_SYSREGS get/set: PMR, IGRPEN, CTLR checks, SRE, APRs beyond 5 priority bits', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    const E = (n: string) => SYSREGS_BY_NAME.get(n)!.enc;
    sysregUaccess(h, 1, E('ICC_PMR_EL1'), true, 0xffn);
    expect(vcpuField(h, 1, 'pmr')).toBe(0xf8);
    expect(sysregUaccess(h, 1, E('ICC_PMR_EL1'), false, 0n)).toBe(0xf8n);
    expect(vcpuField(h, 0, 'pmr')).toBe(0);
    sysregUaccess(h, 1, E('ICC_IGRPEN1_EL1'), true, 1n);
    expect(vcpuField(h, 1, 'eng1')).toBe(1);
    expect(sysregUaccess(h, 1, E('ICC_SRE_EL1'), false, 0n)).toBe(7n);
    expect(() => sysregUaccess(h, 1, E('ICC_SRE_EL1'), true, 1n)).toThrow(KvmError);
    // CTLR: PRIbits = 4 (5 bits) in [10:8], A3V bit 15, EOImode bit 1, CBPR bit 0.
    const ctlr = sysregUaccess(h, 1, E('ICC_CTLR_EL1'), false, 0n);
    expect(Number(ctlr) & 0x700).toBe(4 << 8);
    expect(Number(ctlr) & (1 << 15)).toBe(1 << 15);
    sysregUaccess(h, 1, E('ICC_CTLR_EL1'), true, ctlr | 0b11n);
    expect([vcpuField(h, 1, 'eoiMode'), vcpuField(h, 1, 'cbpr')]).toEqual([1, 1]);
    expect(() => sysregUaccess(h, 1, E('ICC_CTLR_EL1'), true, (ctlr & ~0x700n) | (5n << 8n))).toThrow(KvmError);
    expect(() => sysregUaccess(h, 1, E('ICC_CTLR_EL1'), true, ctlr & ~(1n << 15n))).toThrow(KvmError);
    sysregUaccess(h, 1, E('ICC_AP1R0_EL1'), true, 0x10n);
    expect(vcpuField(h, 1, 'ap1r')).toBe(0x10);
    expect(() => sysregUaccess(h, 1, E('ICC_AP0R1_EL1'), false, 0n)).toThrow(KvmError);
    // BPR1 is BPR0 + 1 while CBPR is set; writes ignored then.
    sysregUaccess(h, 1, E('ICC_BPR0_EL1'), true, 4n);
    expect(sysregUaccess(h, 1, E('ICC_BPR1_EL1'), false, 0n)).toBe(5n);
    sysregUaccess(h, 1, E('ICC_BPR1_EL1'), true, 7n);
    expect(vcpuField(h, 1, 'bpr1')).toBe(0);
  });
});

describe('GICv3 SGI generation (spec §5.5)', () => {
  it('Aff3.Aff2.Aff1 plus the Aff0 target list selects vCPUs; unknown targets are skipped', () => {
    const h = makeVm({ model: 3, vcpus: 18, maxVcpus: 18 });
    // vCPU 17 has Aff1 = 1, Aff0 = 1; vCPU 1 has Aff1 = 0, Aff0 = 1.
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 3, aff1: 1, list: 0b10 | (1 << 9) }), true);
    expect(irqField(h, 17, 3, 'pendingLatch')).toBe(1);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(0);
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 4, list: 0b110 }), true);
    expect([0, 1, 2, 3].map((t) => irqField(h, t, 4, 'pendingLatch'))).toEqual([0, 1, 1, 0]);
    // Aff3 / Aff2 name no vCPU here.
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 5, aff3: 1, list: 1 }), true);
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 5, aff2: 1, list: 1 }), true);
    expect(irqField(h, 0, 5, 'pendingLatch')).toBe(0);
    // v3 SGIs keep no source.
    expect(irqField(h, 1, 4, 'source')).toBe(0);
  });

  it('IRM = 1 targets every vCPU but the writer', () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    vgicV3DispatchSgi(h, 1, sgiValue({ intid: 7, irm: true, list: 0b10 }), true);
    expect([0, 1, 2].map((t) => irqField(h, t, 7, 'pendingLatch'))).toEqual([1, 0, 1]);
  });

  it('group rule: a group-0 access raises only group-0 SGIs, a group-1 access either', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setIrqField(h, 1, 2, 'group', 0); // SGI 2 of vCPU 1 in group 0; SGI 3 stays group 1
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 3, list: 0b10 }), false);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(0);
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 2, list: 0b10 }), false);
    expect(irqField(h, 1, 2, 'pendingLatch')).toBe(1);
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 3, list: 0b10 }), true);
    expect(irqField(h, 1, 3, 'pendingLatch')).toBe(1);
  });

  it('queues on the target and requests IRQ_PENDING when the distributor is enabled', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    vgicMmioWrite(h, 0, DIST_BASE, 4, 1 << 1);
    setVcpuField(h, 1, 'requests', 0);
    vgicV3DispatchSgi(h, 0, sgiValue({ intid: 9, list: 0b10 }), true);
    expect(apList(h, 1)).toEqual([rec(h, 1, 9)]);
    expect(vcpuField(h, 1, 'requests') & KVM_REQ_IRQ_PENDING).toBe(KVM_REQ_IRQ_PENDING);
  });
});

describe('GuestCpu through the tables (single thread, no worker)', () => {
  it('v3: ICC registers drive the CPU interface; an SGI to self is acknowledged and EOIed', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    vgicMmioWrite(h, 0, DIST_BASE, 4, 1 << 1);
    const { cpu, done } = runVcpu(h, 0, 2);
    try {
      expect(cpu.sysregRead('ICC_SRE_EL1')).toBe(7n);
      cpu.sysregWrite('ICC_PMR_EL1', 0xff);
      expect(cpu.sysregRead('ICC_PMR_EL1')).toBe(0xf8n);
      cpu.sysregWrite('ICC_IGRPEN1_EL1', 1);
      expect(cpu.sysregRead('ICC_IGRPEN1_EL1')).toBe(1n);
      cpu.sysregWrite('ICC_CTLR_EL1', 0b10);
      expect(Number(cpu.sysregRead('ICC_CTLR_EL1')) & 0b11).toBe(0b10);
      cpu.sysregWrite('ICC_CTLR_EL1', 0);
      cpu.sysregWrite('ICC_SGI1R_EL1', sgiValue({ intid: 6, list: 0b01 }));
      expect(cpu.sysregRead('ICC_HPPIR1_EL1')).toBe(6n);
      expect(cpu.sysregRead('ICC_IAR1_EL1')).toBe(6n);
      expect(cpu.sysregRead('ICC_RPR_EL1')).toBe(0n); // SGI priority 0 is now running
      cpu.sysregWrite('ICC_EOIR1_EL1', 6);
      expect(cpu.sysregRead('ICC_RPR_EL1')).toBe(0xffn);
      expect(cpu.sysregRead('ICC_IAR1_EL1')).toBe(1023n);
      cpu.sysregWrite('ICC_SGI0R_EL1', sgiValue({ intid: 6, list: 0b10 })); // group-1 SGI: not raised
      expect(irqField(h, 1, 6, 'pendingLatch')).toBe(0);
      cpu.sendSgi(6, [1]);
      expect(irqField(h, 1, 6, 'pendingLatch')).toBe(1);
    } finally {
      done();
    }
  });

  it('v2: the GICC frame acknowledges an SGI with its source and EOIs it', () => {
    const h = makeVm({ model: 2, vcpus: 2 });
    vgicMmioWrite(h, 0, DIST_BASE, 4, 1);
    const { cpu, done } = runVcpu(h, 1, 2);
    try {
      const gicc = cpu.giccBase;
      expect(cpu.mmioRead(gicc + 0xfc)).toBe(((0x4b << 20) | (2 << 16) | 0x43b) >>> 0);
      cpu.mmioWrite(gicc + 0x04, 0xff);
      expect(cpu.mmioRead(gicc + 0x04)).toBe(0xf8);
      cpu.mmioWrite(gicc + 0x00, 0b11); // EnableGrp0 | EnableGrp1
      expect(cpu.mmioRead(gicc + 0x00)).toBe(0b11);
      expect(cpu.mmioRead(gicc + 0x00, 2)).toBe(0); // 32-bit only
      cpu.sendSgi(2, 'self');
      const iar = cpu.mmioRead(gicc + 0x0c);
      expect(iar & 0x3ff).toBe(2);
      expect((iar >> 10) & 7).toBe(1); // source CPU in [12:10]
      expect(cpu.mmioRead(gicc + 0xd0)).not.toBe(0); // an active priority is recorded
      cpu.mmioWrite(gicc + 0x10, iar);
      expect(cpu.mmioRead(gicc + 0xd0)).toBe(0);
      expect(cpu.mmioRead(gicc + 0x14)).toBe(0xff); // RPR idle
      expect(cpu.mmioRead(gicc + 0x0c)).toBe(1023);
    } finally {
      done();
    }
  });
});

describe('LEVEL_INFO (spec §7.4)', () => {
  it('sets and reads line levels; SGIs and INTIDs beyond the range are RAZ/WI; base must be a multiple of 32', () => {
    const h = makeVm({ model: 3, vcpus: 1, nrSpis: 32 });
    vgicMmioWrite(h, 0, DIST_BASE, 4, 1 << 1);
    vgicMmioWrite(h, 0, DIST_BASE + 0x104, 4, 1 << 8); // enable INTID 40
    for (const i of [40, 41]) setIrqField(h, 0, i, 'config', LEVEL);
    levelInfoUaccess(h, 0, 32, true, (1 << 8) | (1 << 9));
    expect(irqField(h, 0, 40, 'lineLevel')).toBe(1);
    expect(irqField(h, 0, 40, 'vcpu')).toBe(0); // raising queues it (enabled, pending)
    expect(levelInfoUaccess(h, 0, 32, false, 0)).toBe((1 << 8) | (1 << 9));
    levelInfoUaccess(h, 0, 32, true, 1 << 8);
    expect(irqField(h, 0, 41, 'lineLevel')).toBe(0);
    // The line is set even on an edge interrupt (restore order independence).
    levelInfoUaccess(h, 0, 32, true, 1 << 10);
    expect(irqField(h, 0, 42, 'lineLevel')).toBe(1);
    // SGIs RAZ/WI; PPIs are real.
    levelInfoUaccess(h, 0, 0, true, 0xffffffff);
    expect(irqField(h, 0, 3, 'lineLevel')).toBe(0);
    expect(irqField(h, 0, 20, 'lineLevel')).toBe(1);
    expect(levelInfoUaccess(h, 0, 0, false, 0)).toBe(0xffff0000); // PPIs are level
    expect(levelInfoUaccess(h, 0, 64, false, 0)).toBe(0);
    levelInfoUaccess(h, 0, 64, true, 0xffffffff);
    expect(() => levelInfoUaccess(h, 0, 40, false, 0)).toThrow(KvmError);
  });
});
