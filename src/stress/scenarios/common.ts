/** Pieces the built-in scenarios share: the guest prologue and counting handler, and checks. */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs } from '../scenario.js';
import type { DriverCtx } from '../driver-ctx.js';
import { EventFd, type EventFdHandle } from '../../eventfd/eventfd.js';
import { KVM_IRQFD_FLAG_RESAMPLE, VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../../uapi/kvm.js';
import type { Vm } from '../../kvm/vm.js';

/**
 * Bring the CPU interface up, count every acknowledgement in guest RAM (SPIs: ACKS and SEEN; SGIs:
 * SGI_ACKS), EOI (then `afterEoi`, e.g. a deactivation with EOImode=1); vCPU 0 routes the SPIs
 * round-robin, enables them and the distributor. Then announce readiness and unmask.
 */
export function guestPrologue(cpu: GuestCpu, a: ScenarioArgs, onSpi?: (c: GuestCpu, intid: number) => void, afterEoi?: (c: GuestCpu, iar: number, intid: number) => void): void {
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const id = iar & 0x3ff;
    if (id >= VGIC_NR_PRIVATE_IRQS) {
      Atomics.store(c.ram, SRAM.SEEN + id, Atomics.load(c.ram, SRAM.GEN + id));
      c.add(SRAM.ACKS + id, 1);
      onSpi?.(c, id);
    } else if (id < VGIC_NR_SGIS) c.add(SRAM.SGI_ACKS + 16 * c.id + id, 1);
    c.eoi(iar);
    afterEoi?.(c, iar, id);
  });
  if (cpu.id === 0) {
    a.spis.forEach((s, i) => {
      cpu.driver.route(s, i % cpu.nrVcpus);
      cpu.driver.enable(s);
    });
    cpu.driver.enableDistributor();
  }
  cpu.add(SRAM.READY, 1);
  cpu.enableIrqs();
}

/** Sleep in WFI until the VM is stopped (the run ends with VmStopped). */
export function idleForever(cpu: GuestCpu): never {
  for (;;) cpu.wfi();
}

/** Spin in the guest (never exiting on its own) until stopped: exposes lost kicks. */
export function spinForever(cpu: GuestCpu): never {
  for (;;) cpu.relax();
}

/** Spin (taking interrupts) until `done`; bounded, so that a lost interrupt is a fault, not a hang. */
export function spinUntil(cpu: GuestCpu, done: () => boolean, what: string): void {
  for (let i = 0; !done(); i++) {
    if (i > 2_000_000) throw new Error(`vCPU ${cpu.id}: gave up waiting for ${what} (IRQs ${cpu.irqsEnabled ? 'unmasked' : 'masked'}, PMR 0x${cpu.pmr.toString(16)}, RPR 0x${cpu.rpr().toString(16)}, HPPIR ${cpu.hppir()})`);
    cpu.relax();
  }
}

/** Driver: wait for every vCPU's prologue. */
export function waitReady(d: DriverCtx): boolean {
  return d.waitFor(() => Atomics.load(d.ram, SRAM.READY) >= d.nrVcpus, 'the vCPUs to come up');
}

/** Accounting: an SPI is never acknowledged more often than injected, and at least once if injected. */
export function checkSpiAccounting(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  for (const s of a.spis) {
    const acc = Atomics.load(ram, SRAM.ACCEPTED + s);
    const ack = Atomics.load(ram, SRAM.ACKS + s);
    if (ack > acc) out.push(`SPI ${s}: ${ack} acknowledgements for ${acc} accepted injections (duplicate delivery)`);
    if (acc > 0 && ack === 0) out.push(`SPI ${s}: ${acc} accepted injections, never acknowledged (lost)`);
  }
  return out;
}

/**
 * Driver of the SPI storms. Phase 1: random SPIs, often twice in a row (a second edge while the
 * first may still sit in an LR must coalesce or be delivered, and must kick the vCPU even though
 * the IRQ is already queued: spec §3.6 note a). Phase 2: ping each SPI and wait for its
 * acknowledgement before the next, so every injection is "the last one" and a lost kick or
 * wake-up cannot be healed by a later injection. `settled` (if given) must hold too before the
 * VM stops: the scenario's own follow-up work is done.
 */
export function spiStormDriver(d: DriverCtx, a: ScenarioArgs, afterStorm?: () => void, settled?: () => boolean): void {
  if (!waitReady(d)) return d.stopVm();
  for (let i = 0; i < a.iterations; i++) {
    const s = a.spis[d.prng.int(a.spis.length)]!;
    d.injectCounted(s);
    if (d.prng.chance(0.3)) d.injectCounted(s);
    d.relax(i);
  }
  afterStorm?.();
  if (!d.waitFor(() => d.spisQuiet(a.spis), 'every SPI of the storm to be delivered')) return d.stopVm();
  // Pairs of SPIs routed to the same vCPU (round-robin routing: s and s + n share a target): the
  // first one's kick makes the vCPU exit, the second lands while it re-enters.
  const n = d.nrVcpus;
  for (let i = 0; i < a.iterations; i++) {
    const x = a.spis[i % a.spis.length]!;
    const y = a.spis[(i + n) % a.spis.length]!;
    const ax = Atomics.load(d.ram, SRAM.ACKS + x);
    const ay = Atomics.load(d.ram, SRAM.ACKS + y);
    d.injectCounted(x);
    for (let k = d.prng.int(4); k > 0; k--) d.relax();
    if (y !== x) d.injectCounted(y);
    const done = (): boolean => Atomics.load(d.ram, SRAM.ACKS + x) > ax && (y === x || Atomics.load(d.ram, SRAM.ACKS + y) > ay);
    if (!d.waitFor(done, `SPIs ${x} and ${y} (ping ${i}) to be acknowledged`)) return d.stopVm();
  }
  // The scenario's own condition first: what it waits for (every vCPU done) ends any new pending
  // state, so the quiet check after it cannot be overtaken (see guest-regs' settled()).
  d.waitFor(() => (!settled || settled()) && d.spisQuiet(a.spis), 'every SPI to be delivered');
  d.stopVm();
}

/**
 * Scenarios whose vCPUs each work through a fixed task during the SPI storm, then add 1 at
 * `done + their index`: the storm's driver, which also waits for every vCPU's task.
 */
export function spiStormUntilDone(d: DriverCtx, a: ScenarioArgs, done: number): void {
  const finished = (): boolean => Array.from({ length: d.nrVcpus }, (_, v) => Atomics.load(d.ram, done + v) === 1).every(Boolean);
  spiStormDriver(d, a, undefined, finished);
}

/**
 * Their check: the storm's SPI accounting, then per vCPU "did not finish `task`" or, with
 * `errors` guest words (one per vCPU) non-zero, `describe(v, count)`.
 */
export function checkTaskAccounting(ram: Int32Array, a: ScenarioArgs, done: number, task: string, errors: number, describe: (v: number, count: number) => string): string[] {
  const out = checkSpiAccounting(ram, a);
  const vcpus = Atomics.load(ram, SRAM.READY);
  for (let v = 0; v < vcpus; v++) {
    if (Atomics.load(ram, done + v) !== 1) out.push(`vCPU ${v}: did not finish its ${task}`);
    const n = Atomics.load(ram, errors + v);
    if (n !== 0) out.push(`vCPU ${v}: ${describe(v, n)}`);
  }
  return out;
}

/** A guest word as 0x hex (unsigned). */
export const hex32 = (x: number): string => `0x${(x >>> 0).toString(16)}`;

/** Resampling irqfds handed from setup() (main thread) to the driver thread in `args.extra`. */
interface ResampleWiring {
  fds: EventFdHandle[];
  resamplefds: EventFdHandle[];
}

/**
 * setup(): one resampling irqfd per entry of `gsis` (QEMU's wiring for a level line), its eventfds
 * passed on to the driver through `a.extra`.
 */
export function wireResampleIrqfds(vm: Vm, a: ScenarioArgs, gsis: readonly number[]): void {
  const w: ResampleWiring = { fds: [], resamplefds: [] };
  for (const gsi of gsis) {
    const fd = new EventFd();
    const rfd = new EventFd();
    vm.irqfd({ fd, gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    w.fds.push(fd.share());
    w.resamplefds.push(rfd.share());
  }
  a.extra = { ...a.extra, irqfd: w };
}

/** driver(): the irqfds wireResampleIrqfds made, adopted in this thread. */
export function resampleIrqfds(a: ScenarioArgs, scenario: string): { fds: EventFd[]; rfds: EventFd[] } {
  const w = a.extra?.irqfd as ResampleWiring | undefined;
  if (!w) throw new Error(`${scenario}: setup() did not wire the irqfds`);
  return { fds: w.fds.map((x) => EventFd.from(x)), rfds: w.resamplefds.map((x) => EventFd.from(x)) };
}
