/**
 * The VMM's operations while interrupts are in flight. The guests take SPIs (from KVM_IRQ_LINE
 * and from irqfds), level PPIs (KVM_IRQ_LINE's PPI type) and, on GICv3, LPIs (MSIs through the
 * ITS: KVM_SIGNAL_MSI's path and an irqfd with an MSI route). Meanwhile the driver, as a VMM
 * thread:
 *
 * - rewrites the GSI routing (KVM_SET_GSI_ROUTING): the irqfds' lines move to other SPIs;
 * - pauses the VM (every vCPU signalled out of KVM_RUN, as for a migration) with interrupts
 *   queued and pending, and saves and restores the vgic's register groups (DIST_REGS,
 *   REDIST_REGS, CPU_SYSREGS / CPU_REGS, LEVEL_INFO), the vCPUs' timer registers (ONE_REG), the
 *   LPI pending tables (SAVE_PENDING_TABLES) and the ITS (ITS_REGS, SAVE_TABLES), and restores
 *   that ITS into a second one (RESET, ITS_REGS, RESTORE_TABLES: a migration target inside the
 *   same VM), to which MSIs are then sent too; then resumes the vCPUs.
 *
 * Set-up (main thread) uses the rest of the VM and vCPU ioctls: device attributes (HAS/GET),
 * NR_IRQS, the timer PPI attributes and ONE_REG before the first run, irqfds with irqchip and MSI
 * routes. Accounting: every SPI delivered and never more often than injected, every level PPI
 * serviced, every MSI sent to either ITS after the last pause acknowledged, every pause done and
 * every register read back as restored.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { enableLpis, GuestIts, setLpiConfig } from '../../guest/its-driver.js';
import { doorbellOf, ITS_BASE, ITS_LAYOUT, ITT, LPI_LAYOUT } from './its-layout.js';
import type { Vm } from '../../kvm/vm.js';
import { VgicDevice } from '../../kvm/vgic-device.js';
import { ItsDevice } from '../../kvm/its-device.js';
import { EventFd, type EventFdHandle } from '../../eventfd/eventfd.js';
import { setGsiRouting, type RoutingEntry } from '../../vgic/irq-routing.js';
import { timerGetReg, timerSetReg, TIMER_REG_IDS } from '../../kvm/timer/timer-uapi-access.js';
import { lockVcpuMutex, unlockVcpuMutex } from '../../vgic/locks.js';
import { D } from '../../vgic/host.js';
import {
  KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_ARM_ITS_RESTORE_TABLES, KVM_DEV_ARM_ITS_SAVE_TABLES, KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID, KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_V2_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_DIST,
} from '../../uapi/kvm.js';
import { KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_PTIMER, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, KVM_REG_ARM_TIMER_CNT, KVM_REG_ARM_PTIMER_CNT } from '../../uapi/timer.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, idleForever, waitReady } from './common.js';
import { pauseVcpus, resumeVcpus } from './vmm-pause.js';
import { registerList, roundTrip } from './regs-roundtrip.js';

export const info: ScenarioInfo = {
  name: 'vmm-ops',
  description: 'VMM ioctls under fire: register save/restore in a pause, ITS save/restore, GSI routing, irqfds, PPI lines',
  vcpus: 2,
  iterations: 40,
  spis: 4,
};

const PPI = 23;
const ITS0 = ITS_BASE;
/** The migration target: above the redistributors of up to 8 vCPUs. */
const ITS1 = 0x08200000;
const DOORBELL = doorbellOf;
const DEV = 2;
const EV = 1;
const LPI = 8192;
/** The GSI of the irqfd whose route is an MSI to ITS0. */
const MSI_GSI = 64;
/** A pause every PAUSE_EVERY iterations. */
const PAUSE_EVERY = 10;

const W = SRAM.SCRATCH;
/** Per vCPU: level PPI 23 raises (driver) and services (guest). */
const PPI_RAISED = W;
const PPI_SERVICED = W + 64;
const LPI_ACKS = W + 128;
const LPI_SENT = W + 129;
const PAUSES = W + 130;
const MISMATCHES = W + 131;
const ROUTE_FLIPS = W + 132;
const ITS_RESTORES = W + 133;
/** The first mismatch, as (group << 24 | register index) + 1. */
const FIRST_BAD = W + 134;
const NR_IRQS = 64;

interface Wiring {
  fds: EventFdHandle[];
  msiFd: EventFdHandle | null;
}

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  const v3 = vm.host.m[D.model] === 3;
  if (phase === 'before-init') {
    const dev = vgicOf(vm);
    dev.setAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, BigInt(NR_IRQS));
    const distAddr = v3 ? KVM_VGIC_V3_ADDR_TYPE_DIST : KVM_VGIC_V2_ADDR_TYPE_DIST;
    dev.hasAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, distAddr);
    dev.hasAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0);
    dev.hasAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    if (dev.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, distAddr) < 0n) throw new Error('vmm-ops: no distributor address');
    if (dev.getAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0) !== BigInt(NR_IRQS)) throw new Error('vmm-ops: NR_IRQS did not stick');
    // The timer PPIs (the defaults, set explicitly) and the timer registers, before the first run.
    for (let v = 0; v < a.spis.length && vm.vcpu(v); v++) {
      const c = vm.vcpu(v)!;
      c.hasAttr(KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_VTIMER);
      c.setAttr(KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, c.getAttr(KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_VTIMER));
      c.setAttr(KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_PTIMER, c.getAttr(KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_PTIMER));
      for (const id of TIMER_REG_IDS) if (id !== KVM_REG_ARM_TIMER_CNT && id !== KVM_REG_ARM_PTIMER_CNT) c.setOneReg(id, c.getOneReg(id));
    }
    if (!v3) return;
    for (const base of [ITS0, ITS1]) {
      const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS)!;
      its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(base));
      its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
      if (its.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE) !== BigInt(base)) throw new Error('vmm-ops: ITS address did not stick');
      // What QEMU probes before it relies on ITS save/restore and reset.
      its.hasAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE);
      for (const c of [KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_ARM_ITS_SAVE_TABLES, KVM_DEV_ARM_ITS_RESTORE_TABLES]) its.hasAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, c);
      for (const r of [0x0, 0x4, 0x8, 0x80, 0x88, 0x90, 0x100]) its.hasAttr(KVM_DEV_ARM_VGIC_GRP_ITS_REGS, r);
    }
    dev.hasAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES);
    return;
  }
  // One irqfd per SPI (GSI = SPI - 32 under the routing below), and on GICv3 one MSI irqfd.
  const w: Wiring = { fds: [], msiFd: null };
  for (const s of a.spis) {
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: s - 32 });
    w.fds.push(fd.share());
  }
  vm.setGsiRouting(routing(a, 0, v3));
  if (v3) {
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: MSI_GSI });
    w.msiFd = fd.share();
  }
  // A device's MSI before the guest enabled its ITS: KVM_SIGNAL_MSI refuses it (EBUSY).
  if (v3) {
    try {
      vm.signalMsi({ addressLo: DOORBELL(ITS0), data: EV, devid: DEV, flags: KVM_MSI_VALID_DEVID });
      throw new Error('vmm-ops: KVM_SIGNAL_MSI delivered through a disabled ITS');
    } catch (e) {
      // By name: `vm` may come from another copy of the package than this module's KvmError.
      if ((e as { code?: string }).code !== 'EBUSY') throw e;
    }
  }
  // An irqfd assigned and deassigned again (a device unplugged before the guest ran), then the
  // table must list exactly the scenario's.
  const gone = new EventFd();
  vm.irqfd({ fd: gone, gsi: a.spis.length });
  vm.irqfd({ fd: gone, gsi: a.spis.length, flags: KVM_IRQFD_FLAG_DEASSIGN });
  const listed = vm.irqfds().length;
  if (listed !== w.fds.length + (v3 ? 1 : 0)) throw new Error(`vmm-ops: ${listed} irqfds listed after the deassign`);
  for (const c of vm.vcpus) {
    // Before the first KVM_RUN a signal has nothing to interrupt (no signal is left pending) and
    // a resume nothing to resume.
    const ram = vm.ram;
    void c.interrupt().then((r) => {
      if (r.exitReason !== null) Atomics.add(ram, MISMATCHES, 1); // reported by check()
    });
    c.resume();
    if (c.interrupted || c.isRunning || c.stats().exits.intr !== 0) throw new Error('vmm-ops: a vCPU was interrupted before it ran');
  }
  // The VMM's snapshot of the VM before it runs (what a migration would start from).
  if (vm.snapshot().ram.byteLength !== vm.ram.byteLength) throw new Error('vmm-ops: the snapshot has another RAM size');
  if (vm.lockStats().length === 0) throw new Error('vmm-ops: no lock classes');
  a.extra = { ...a.extra, vmmOps: w };
}

/** A view of the vgic device the runner created (its model is in the distributor's state). */
function vgicOf(vm: Vm): VgicDevice {
  return new VgicDevice(vm.host, vm.host.m[D.model] === 2 ? KVM_DEV_TYPE_ARM_VGIC_V2 : KVM_DEV_TYPE_ARM_VGIC_V3, vm.options.ipaBits);
}

/** Routing with shift k: GSI i drives SPI spis[(i + k) % n]; GSI MSI_GSI is an MSI to ITS0. */
function routing(a: ScenarioArgs, k: number, v3: boolean): RoutingEntry[] {
  const n = a.spis.length;
  const out: RoutingEntry[] = a.spis.map((_, i) => ({ gsi: i, type: KVM_IRQ_ROUTING_IRQCHIP, pin: a.spis[(i + k) % n]! - 32 }));
  if (v3) out.push({ gsi: MSI_GSI, type: KVM_IRQ_ROUTING_MSI, flags: KVM_MSI_VALID_DEVID, addressLo: DOORBELL(ITS0), data: EV, devid: DEV });
  return out;
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  const v3 = cpu.gic === 3;
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const id = iar & (v3 ? 0xffffff : 0x3ff);
    if (id >= LPI) c.add(LPI_ACKS, 1);
    else if (id >= 32) {
      Atomics.store(c.ram, SRAM.SEEN + id, Atomics.load(c.ram, SRAM.GEN + id));
      c.add(SRAM.ACKS + id, 1);
    } else if (id === PPI) c.add(PPI_SERVICED + c.id, 1);
    c.eoi(iar);
  });
  cpu.driver.enable(PPI);
  if (cpu.id === 0) {
    a.spis.forEach((s, i) => {
      cpu.driver.route(s, i % cpu.nrVcpus);
      cpu.driver.enable(s);
    });
    if (v3) setLpiConfig(cpu, LPI_LAYOUT, LPI, 0xa0, true);
    cpu.driver.enableDistributor();
  }
  if (v3) enableLpis(cpu, LPI_LAYOUT);
  if (v3 && cpu.id === 0) {
    // Every other vCPU's LPIs are on before the ITS maps a collection to one of them.
    while (cpu.load(SRAM.READY) < cpu.nrVcpus - 1) cpu.relax();
    const its = new GuestIts(cpu, ITS_LAYOUT);
    its.setupTables();
    its.enable();
    its.mapc(0, cpu.nrVcpus - 1);
    its.mapd(DEV, ITT, 2);
    its.mapti(DEV, EV, LPI, 0);
    its.waitSync();
  }
  cpu.add(SRAM.READY, 1);
  cpu.enableIrqs();
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  const w = a.extra?.vmmOps as Wiring | undefined;
  if (!w) throw new Error('vmm-ops: setup() did not wire the irqfds');
  if (!waitReady(d)) return d.stopVm();
  const h = d.host;
  const v3 = d.gic === 3;
  const fds = w.fds.map((x) => EventFd.from(x));
  const msiFd = w.msiFd ? EventFd.from(w.msiFd) : null;
  const vgic = new VgicDevice(h, v3 ? KVM_DEV_TYPE_ARM_VGIC_V3 : KVM_DEV_TYPE_ARM_VGIC_V2, h.cfg.ipaBits);
  const its0 = v3 ? new ItsDevice(h, 0, h.cfg.ipaBits) : null;
  const its1 = v3 ? new ItsDevice(h, 1, h.cfg.ipaBits) : null;
  let regs: ReturnType<typeof registerList> | null = null;
  let saved: bigint[] = [];
  const n = a.spis.length;
  let shift = 0;
  let its1Live = false;

  const irqfdSpi = (i: number): void => {
    const s = a.spis[(i + shift) % n]!;
    Atomics.add(d.ram, SRAM.GEN + s, 1);
    // An irqchip route injects in this thread (the irqfd fast path), before write() returns.
    Atomics.add(d.ram, SRAM.ACCEPTED + s, 1);
    fds[i]!.write(1n);
  };
  const lpisSettled = (): boolean => Atomics.load(d.ram, LPI_ACKS) >= 1 || Atomics.load(d.ram, LPI_SENT) === 0;

  for (let i = 0; i < a.iterations; i++) {
    const k = d.prng.int(n);
    if (d.prng.chance(0.5)) d.injectCounted(a.spis[k]!);
    else irqfdSpi(k);
    if (v3) {
      // MSIs: KVM_SIGNAL_MSI's path to either live ITS, or the MSI irqfd.
      if (msiFd && d.prng.chance(0.3)) {
        msiFd.write(1n);
        Atomics.add(d.ram, LPI_SENT, 1);
      } else if (d.msi(DOORBELL(its1Live && d.prng.chance(0.5) ? ITS1 : ITS0), DEV, EV) === 1) Atomics.add(d.ram, LPI_SENT, 1);
    }
    if (i % 4 === 1) {
      // A level PPI on vCPU v: raise, wait for the service, lower (KVM_IRQ_LINE, PPI type).
      const v = (i >> 2) % d.nrVcpus;
      const before = Atomics.load(d.ram, PPI_SERVICED + v);
      Atomics.add(d.ram, PPI_RAISED + v, 1);
      d.ppi(v, PPI, 1);
      if (!d.waitFor(() => Atomics.load(d.ram, PPI_SERVICED + v) > before, `PPI ${PPI} of vCPU ${v} to be serviced`)) return d.stopVm();
      d.ppi(v, PPI, 0);
    }
    if (i % 8 === 5) {
      // Move the irqfds' lines. The injections of the old routes were made in this thread and
      // have landed; those still pending stay on the SPIs they were routed to.
      shift = (shift + 1) % n;
      setGsiRouting(h, routing(a, shift, v3));
      Atomics.add(d.ram, ROUTE_FLIPS, 1);
    }
    if (i % PAUSE_EVERY === PAUSE_EVERY - 1) {
      if (!pauseVcpus(d)) return d.stopVm();
      if (!regs) {
        regs = registerList(vgic, h, !v3, d.nrVcpus, NR_IRQS);
        saved = new Array<bigint>(regs.length);
      }
      const list = regs;
      const bad = roundTrip(vgic, list, saved);
      if (bad.length) {
        if (Atomics.load(d.ram, MISMATCHES) === 0) Atomics.store(d.ram, FIRST_BAD, 1 + list.findIndex((r) => bad[0]!.startsWith(`group ${r.group} attr 0x${r.attr.toString(16)}:`)));
        Atomics.add(d.ram, MISMATCHES, bad.length);
      }
      timersRoundTrip(d);
      if (v3) {
        vgic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES);
        itsMigrate(its0!, its1!);
        its1Live = true;
        Atomics.add(d.ram, ITS_RESTORES, 1);
      }
      resumeVcpus(d);
      Atomics.add(d.ram, PAUSES, 1);
    }
    d.relax(i);
  }
  // After the last pause: one MSI through each ITS, each acknowledged.
  if (v3) {
    for (const base of its1Live ? [ITS0, ITS1] : [ITS0]) {
      const before = Atomics.load(d.ram, LPI_ACKS);
      if (!d.waitFor(() => lpiQuiet(d), 'the LPI to settle')) return d.stopVm();
      if (d.msi(DOORBELL(base), DEV, EV) !== 1) {
        Atomics.add(d.ram, MISMATCHES, 1);
        continue;
      }
      Atomics.add(d.ram, LPI_SENT, 1);
      if (!d.waitFor(() => Atomics.load(d.ram, LPI_ACKS) > before, `the MSI through 0x${base.toString(16)} to be acknowledged`)) return d.stopVm();
    }
  }
  d.waitFor(() => d.spisQuiet(a.spis) && lpisSettled() && lpiQuiet(d), 'every SPI and LPI to be delivered');
  d.stopVm();
}

/** The LPI is not pending anywhere (in its record or an LR). */
function lpiQuiet(d: DriverCtx): boolean {
  return d.spisQuiet([LPI]);
}

/** Every vCPU's timer registers read and written back (CNT too: that re-sets the VM's offset). */
function timersRoundTrip(d: DriverCtx): void {
  const h = d.host;
  for (let v = 0; v < d.nrVcpus; v++) {
    // KVM_{GET,SET}_ONE_REG take vcpu->mutex: free while the vCPU is out of KVM_RUN.
    lockVcpuMutex(h, v);
    try {
      for (const id of TIMER_REG_IDS) timerSetReg(h, v, id, timerGetReg(h, v, id));
    } finally {
      unlockVcpuMutex(h, v);
    }
  }
}

/** QEMU's order (kvm_arm_its_pre_save / post_load): save ITS0, restore it into a reset ITS1. */
function itsMigrate(src: ItsDevice, dst: ItsDevice): void {
  const R = KVM_DEV_ARM_VGIC_GRP_ITS_REGS;
  src.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
  const ctlr = src.getAttr(R, 0x0);
  const iidr = src.getAttr(R, 0x4);
  src.getAttr(R, 0x8);
  const cbaser = src.getAttr(R, 0x80);
  const cwriter = src.getAttr(R, 0x88);
  const creadr = src.getAttr(R, 0x90);
  const baser = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => src.getAttr(R, 0x100 + 8 * i));
  dst.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_CTRL_RESET);
  dst.setAttr(R, 0x4, iidr);
  dst.setAttr(R, 0x80, cbaser);
  dst.setAttr(R, 0x90, creadr);
  dst.setAttr(R, 0x88, cwriter);
  baser.forEach((b, i) => dst.setAttr(R, 0x100 + 8 * i, b));
  dst.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES);
  dst.setAttr(R, 0x0, ctlr);
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out = checkSpiAccounting(ram, a);
  for (let v = 0; v < 64; v++) {
    const raised = Atomics.load(ram, PPI_RAISED + v);
    if (Atomics.load(ram, PPI_SERVICED + v) < raised) out.push(`PPI ${PPI} of vCPU ${v}: raised ${raised} times, serviced ${Atomics.load(ram, PPI_SERVICED + v)}`);
  }
  const pauses = Math.floor(a.iterations / PAUSE_EVERY);
  if (Atomics.load(ram, PAUSES) !== pauses) out.push(`${Atomics.load(ram, PAUSES)} of ${pauses} pauses done`);
  if (Atomics.load(ram, ROUTE_FLIPS) !== Math.floor((a.iterations + 2) / 8)) out.push(`${Atomics.load(ram, ROUTE_FLIPS)} routing changes, expected ${Math.floor((a.iterations + 2) / 8)}`);
  if (Atomics.load(ram, MISMATCHES) !== 0) out.push(`${Atomics.load(ram, MISMATCHES)} registers did not read back what was restored (first: register #${Atomics.load(ram, FIRST_BAD) - 1})`);
  const sent = Atomics.load(ram, LPI_SENT);
  const acks = Atomics.load(ram, LPI_ACKS);
  if (acks > sent) out.push(`${acks} LPI acknowledgements for ${sent} MSIs (duplicate delivery)`);
  if (sent > 0 && acks === 0) out.push(`${sent} MSIs, no LPI acknowledged`);
  const restores = Atomics.load(ram, ITS_RESTORES);
  if (restores !== 0 && restores !== pauses) out.push(`${restores} ITS restores for ${pauses} pauses`);
  return out;
}
