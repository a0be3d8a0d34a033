/**
 * `vgic-emu demo --vfio`: the VMM start-up order QEMU settled on for VFIO platform devices on arm
 * (the 2014-2015 review of "irqfd before the vgic is initialised"), with physical interrupts
 * produced by device threads:
 *   1. create the vCPUs;  2. set the GIC addresses and NR_IRQS;  3. KVM_DEV_ARM_VGIC_CTRL_INIT;
 *   4. VFIO signalling (trigger + unmask eventfds) and KVM_IRQFD with a resamplefd;  5. run;
 *   6. tear down (irqfds before the vgic).
 * Midway through the run the lines are forwarded (KVM VFIO device FORWARD_IRQ): the counts show
 * resamples stop and HW deactivations take over. `--early-irqfd` first tries step 4 before step
 * 3 and shows the kernel's EAGAIN.
 */
import type { LockClassStats } from '../kvm/vm.js';
import { usedLockStats } from './demo.js';
import { EventFd } from '../eventfd/eventfd.js';
import { ECHO } from '../guest/builtins/irq-echo.js';
import { KvmError } from '../uapi/errno.js';
import { KVM_ARM_IRQ_TYPE_PPI, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_IRQFD_FLAG_RESAMPLE, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField, VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import { VfioPlatformDevice } from '../kvm/vfio/platform-device.js';
import { createVm, type Vm } from '../kvm/vm.js';

export interface VfioDemoOptions {
  vcpus: number;
  devices: number;
  /** Level interrupt lines per device. */
  lines: number;
  seconds: number;
  /** Forward the lines to the guest midway (default true). */
  forward: boolean;
  /** Try KVM_IRQFD before CTRL_INIT first, to show the EAGAIN. */
  earlyIrqfd: boolean;
  out?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface VfioLineSummary {
  device: string;
  index: number;
  spi: number;
  raised: number;
  injected: number;
  acknowledged: number;
  resampled: number;
  hwCompleted: number;
}

export interface VfioDemoSummary {
  earlyIrqfd: string | null;
  lines: VfioLineSummary[];
  forwarded: number;
  teardown: string[];
  /** The lock design (the demo uses 'fine') and the lock statistics per class (integer ns). */
  locking: 'fine' | 'global';
  lockStats: LockClassStats[];
  ok: boolean;
}

const DIST_BASE = 0x08000000n;
const REDIST_BASE = 0x080a0000n;
const FIRST_GSI = 16;
const FORWARD_TIMEOUT_MS = 5000;

interface Wire {
  dev: VfioPlatformDevice;
  index: number;
  gsi: number;
  trigger: EventFd;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`demo --vfio: timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Forward one line, retrying while it is masked or active (EAGAIN), as a VMM would. */
async function forwardLine(vfio: ReturnType<Vm['createDevice']>, w: Wire): Promise<void> {
  const end = Date.now() + FORWARD_TIMEOUT_MS;
  for (;;) {
    try {
      vfio.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { fd: w.dev, index: w.index, start: 0, count: 1, gsi: w.gsi });
      return;
    } catch (e) {
      if (!(e instanceof KvmError && e.code === 'EAGAIN') || Date.now() > end) throw e;
      await sleep(0);
    }
  }
}

export async function runVfioDemo(o: VfioDemoOptions): Promise<VfioDemoSummary> {
  const out = o.out ?? process.stdout;
  const say = (s: string): boolean => out.write(`${s}\n`);
  const nLines = o.devices * o.lines;
  const spis = Array.from({ length: nLines }, (_, i) => 32 + FIRST_GSI + i);
  say(`vgic-emu demo --vfio: ${o.vcpus} vCPUs, GICv3, ${o.devices} device thread(s) x ${o.lines} level line(s), ${o.seconds}s`);

  say('1. create the vCPUs');
  const vm = createVm({ maxVcpus: o.vcpus });
  try {
    for (let i = 0; i < o.vcpus; i++) vm.createVcpu(i, { guest: 'irq-echo', args: { spis, forwardSgi: -1, level: spis } });
    say('2. set the GIC addresses and NR_IRQS');
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, DIST_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, REDIST_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, 128);
    const devs = Array.from({ length: o.devices }, (_, d) => new VfioPlatformDevice(vm, { irqs: new Array(o.lines).fill('level'), name: `vfio${d}` }));
    const wires: Wire[] = devs.flatMap((dev, d) => Array.from({ length: o.lines }, (_, index) => ({ dev, index, gsi: FIRST_GSI + d * o.lines + index, trigger: new EventFd() })));

    let earlyIrqfd: string | null = null;
    if (o.earlyIrqfd) {
      say('   --early-irqfd: KVM_IRQFD before CTRL_INIT ...');
      try {
        vm.irqfd({ fd: wires[0]!.trigger, gsi: wires[0]!.gsi });
        earlyIrqfd = 'accepted (unexpected)';
        say('   accepted: this kernel model does not follow KVM here');
      } catch (e) {
        earlyIrqfd = e instanceof KvmError ? `${e.code} (${e.errno})` : String(e);
        say(`   refused with ${earlyIrqfd}: the vgic is not initialised, so KVM cannot wire an irqfd yet.`);
        say('   Before CTRL_INIT existed, a VMM had to run a vCPU (lazy init) first, and VFIO interrupts raised');
        say('   in between were lost; QEMU now initialises the vgic explicitly before wiring irqfds (step 3).');
      }
    }

    say('3. KVM_DEV_ARM_VGIC_CTRL_INIT');
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);

    say('4. VFIO signalling (trigger + unmask eventfds) and KVM_IRQFD with a resamplefd');
    const vfio = vm.createDevice(KVM_DEV_TYPE_VFIO);
    for (const dev of devs) vfio.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, dev);
    for (const w of wires) {
      const resample = new EventFd();
      w.dev.setTrigger(w.index, w.trigger);
      w.dev.setUnmaskEventFd(w.index, resample); // QEMU passes the resamplefd as VFIO's unmask eventfd
      vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: resample });
      say(`   ${w.dev.name} irq ${w.index} (pINTID ${w.dev.pintid(w.index)}) -> irqfd gsi ${w.gsi} -> SPI ${w.gsi + VGIC_NR_PRIVATE_IRQS}`);
    }

    say('5. run');
    const ram = vm.ram;
    const run = vm.run();
    run.catch(() => undefined); // observed below
    await Promise.race([waitUntil(() => Atomics.load(ram, ECHO.READY) === o.vcpus, 10_000, 'the vCPUs to come up'), run]);
    wires.forEach((w, i) => w.dev.start(w.index, { kind: 'random', count: 10_000_000, meanGapMs: 0.3, seed: 1000 + i }));

    const line = (w: Wire): VfioLineSummary => {
      const c = w.dev.counts(w.index);
      const f = vm.irqfds().find((x) => x.gsi === w.gsi);
      return {
        device: w.dev.name, index: w.index, spi: w.gsi + VGIC_NR_PRIVATE_IRQS, raised: c.raised, injected: (f?.fastInjections ?? 0) + (f?.slowInjections ?? 0),
        acknowledged: Atomics.load(ram, ECHO.SPI_ACKS + w.gsi + VGIC_NR_PRIVATE_IRQS), resampled: f?.resamples ?? 0, hwCompleted: c.hwDeactivations,
      };
    };
    const t0 = performance.now();
    const live = (): void => {
      const s = wires.map(line);
      const sum = (k: keyof VfioLineSummary): number => s.reduce((a, x) => a + (x[k] as number), 0);
      const fwd = wires.filter((w) => w.dev.counts(w.index).forwarded).length;
      // EOI maintenance exits: what forwarding saves (a HW-mapped LR needs none).
      const mi = vm.vcpus.reduce((a, v) => a + v.stats().exits.maintenance, 0);
      const n = (k: keyof VfioLineSummary): string => String(sum(k)).padStart(7);
      say(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] raised ${n('raised')}  injected ${n('injected')}  acked ${n('acknowledged')}  resampled ${n('resampled')}  hw-completed ${n('hwCompleted')}  EOI exits ${String(mi).padStart(7)}  forwarded ${fwd}/${wires.length}`);
    };
    let forwarded = 0;
    const half = t0 + (o.seconds * 1000) / 2;
    const end = t0 + o.seconds * 1000;
    while (performance.now() < end) {
      await sleep(Math.min(500, Math.max(0, end - performance.now())));
      if (o.forward && forwarded === 0 && performance.now() >= half) {
        for (const w of wires) await forwardLine(vfio, w);
        forwarded = wires.length;
        say('   -> lines forwarded (KVM_DEV_VFIO_DEVICE_FORWARD_IRQ): the guest now completes them directly');
      }
      live();
    }
    // Stop the devices and let everything raised be completed.
    for (const w of wires) w.dev.start(w.index, { kind: 'rate', count: 0, periodMs: 0 });
    await waitUntil(() => wires.every((w) => w.dev.counts(w.index).outstanding === 0), 10_000, 'the guest to complete every raised interrupt');
    live();
    Atomics.store(ram, ECHO.STOP, 1);
    for (let v = 0; v < o.vcpus; v++) vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, v, ECHO.DOORBELL_PPI), 1);
    await run;
    const lines = wires.map(line);

    say('6. tear down (irqfds before the vgic)');
    await vm.destroy();
    say(`   order: ${vm.teardownLog.join(' -> ')}`);
    // Every raised event reached the guest once and was completed once, by exactly one path.
    const ok = lines.every((l) => l.raised === l.acknowledged && l.resampled + l.hwCompleted === l.raised);
    return { earlyIrqfd, lines, forwarded, teardown: [...vm.teardownLog], locking: vm.options.locking, lockStats: usedLockStats(vm), ok };
  } finally {
    await vm.destroy();
  }
}

export function formatVfioSummary(s: VfioDemoSummary): string {
  const rows = s.lines.map((l) => `  ${l.device} irq ${l.index} -> SPI ${l.spi}: raised ${l.raised}, acked ${l.acknowledged}, resampled ${l.resampled}, hw-completed ${l.hwCompleted}`);
  const raised = s.lines.reduce((a, l) => a + l.raised, 0);
  return [
    '',
    `summary: ${raised} physical interrupts raised by ${new Set(s.lines.map((l) => l.device)).size} device thread(s)`,
    ...rows,
    s.ok
      ? 'OK: every physical interrupt was acknowledged once and completed once (resample or HW deactivation).'
      : 'FAIL: raised, acknowledged and completed counts differ (see above).',
  ].join('\n');
}
