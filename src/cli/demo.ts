/**
 * `vgic-emu demo`: boot a 4-vCPU GICv3 (or v2) VM whose vCPUs run the irq-echo guest. The main
 * thread injects edge SPIs through KVM_IRQ_LINE while the vCPUs forward an IPI to their neighbour
 * for every SPI they take. Live per-vCPU counts and rates, then a summary that checks every
 * injected edge interrupt was acknowledged.
 *
 * Injection uses credits: SPI s is re-injected only once its previous instance was acknowledged,
 * so "injected == acknowledged" is an exact check (coalescing cannot hide a loss).
 */
import { createVm, type LockClassStats, type Vm } from '../kvm/vm.js';
import {
  KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_SPI, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField,
} from '../uapi/kvm.js';
import { ECHO } from '../guest/builtins/irq-echo.js';
import type { LockingMode } from '../vgic/host.js';

export interface DemoOptions {
  gic: 'v2' | 'v3';
  vcpus: number;
  seconds: number;
  spis: number;
  locking: LockingMode;
  /** Print live lines (default: when stdout is a TTY, redraw in place; else one line per tick). */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface DemoSummary {
  gic: string;
  vcpus: number;
  seconds: number;
  injected: number;
  acknowledged: number;
  sgiAcks: number;
  lost: number;
  perVcpu: { vcpu: number; acks: number; irqExits: number; wfi: number }[];
  /** The lock design the VM ran with, and its lock statistics per class (integer ns). */
  locking: 'fine' | 'global';
  lockStats: LockClassStats[];
  ok: boolean;
}

/** vm.lockStats() for a report: the classes that were used (times are whole nanoseconds). */
export function usedLockStats(vm: Vm): LockClassStats[] {
  return vm.lockStats().filter((c) => c.acquisitions > 0);
}

const DIST_BASE = 0x08000000n;
const CPU_BASE = 0x08010000n;
const REDIST_BASE = 0x080a0000n;

/** Build and configure the demo VM the way a VMM does. */
export function buildDemoVm(o: Pick<DemoOptions, 'gic' | 'vcpus' | 'spis' | 'locking'>): Vm {
  const vm = createVm({ maxVcpus: Math.max(o.vcpus, 1), locking: o.locking });
  const spis = Array.from({ length: o.spis }, (_, i) => 32 + i);
  for (let i = 0; i < o.vcpus; i++) vm.createVcpu(i, { guest: 'irq-echo', args: { spis, forwardSgi: 1 } });
  if (o.gic === 'v3') {
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, DIST_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, REDIST_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  } else {
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, DIST_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, CPU_BASE);
  }
  return vm;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const out = o.out ?? process.stdout;
  const vm = buildDemoVm(o);
  try {
    const ram = vm.ram;
    const run = vm.run();
    run.catch(() => undefined); // observed below
    await Promise.race([waitUntil(() => Atomics.load(ram, ECHO.READY) === o.vcpus, 10_000, 'the vCPUs to come up'), run]);
    const injected = new Float64Array(1024);
    const spis = Array.from({ length: o.spis }, (_, i) => 32 + i);
    const fields = spis.map((s) => kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, s));
    const acked = (s: number): number => Atomics.load(ram, ECHO.SPI_ACKS + s);
    const t0 = performance.now();
    let lastPrint = t0;
    let lastAcks = new Array<number>(o.vcpus).fill(0);
    const live = (final: boolean): void => {
      const now = performance.now();
      const dt = (now - lastPrint) / 1000;
      const st = vm.vcpus.map((v) => v.stats());
      const cols = st.map((s, i) => `vcpu${i} ${String(s.acks).padStart(8)} (${String(Math.round((s.acks - lastAcks[i]!) / dt)).padStart(7)}/s)`);
      lastAcks = st.map((s) => s.acks);
      lastPrint = now;
      const line = `[${((now - t0) / 1000).toFixed(1).padStart(5)}s] ${cols.join('  ')}`;
      // On a TTY the live line is redrawn in place (cleared first, so a shorter line leaves no
      // tail) and the final one ends it; elsewhere every tick is a line of its own.
      if (out.isTTY) out.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
      else out.write(`${line}\n`);
    };
    out.write(`vgic-emu demo: ${o.vcpus} vCPUs, GIC${o.gic}, ${o.spis} edge SPIs, locking '${o.locking}', ${o.seconds}s\n`);
    const deadline = t0 + o.seconds * 1000;
    while (performance.now() < deadline) {
      for (let k = 0; k < 64; k++) {
        for (let i = 0; i < spis.length; i++) {
          const s = spis[i]!;
          if (acked(s) === injected[s]) {
            injected[s]!++;
            vm.irqLine(fields[i]!, 1);
          }
        }
      }
      if (performance.now() - lastPrint > 500) live(false);
      await tick();
    }
    await waitUntil(() => spis.every((s) => acked(s) === injected[s]), 5_000, 'the last acknowledgements').catch(() => undefined);
    live(true);
    // Shut down: raise STOP, then ring the doorbell PPI on each vCPU to wake it from WFI.
    Atomics.store(ram, ECHO.STOP, 1);
    for (let v = 0; v < o.vcpus; v++) vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, v, ECHO.DOORBELL_PPI), 1);
    await run;
    const total = spis.reduce((a, s) => a + injected[s]!, 0);
    const acks = spis.reduce((a, s) => a + acked(s), 0);
    let sgiAcks = 0;
    for (let v = 0; v < o.vcpus; v++) sgiAcks += Atomics.load(ram, ECHO.SGI_ACKS + 16 * v + 1);
    const perVcpu = vm.vcpus.map((v) => {
      const s = v.stats();
      return { vcpu: v.id, acks: s.acks, irqExits: s.exits.irq, wfi: s.wfi };
    });
    const lost = spis.reduce((a, s) => a + (injected[s]! - acked(s)), 0);
    return { gic: o.gic, vcpus: o.vcpus, seconds: o.seconds, injected: total, acknowledged: acks, sgiAcks, lost, perVcpu, locking: o.locking, lockStats: usedLockStats(vm), ok: lost === 0 };
  } finally {
    await vm.destroy();
  }
}

export function formatSummary(s: DemoSummary): string {
  const lines = [
    '',
    `summary: ${s.injected} edge SPIs injected, ${s.acknowledged} acknowledged, ${s.sgiAcks} forwarded IPIs taken`,
    ...s.perVcpu.map((p) => `  vcpu${p.vcpu}: ${p.acks} acks, ${p.irqExits} kick exits, ${p.wfi} WFI`),
    s.ok ? 'OK: every injected edge interrupt was acknowledged exactly once.' : `FAIL: ${s.lost} injected edge interrupts were never acknowledged.`,
  ];
  return lines.join('\n');
}
