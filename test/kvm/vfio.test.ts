/**
 * VFIO-like platform devices and interrupt forwarding (spec §8.5 resample, §10 forwarding and
 * irqbypass): device worker threads raise level/edge lines into irq-echo guests through irqfds
 * (with resamplefd = the device's unmask eventfd, QEMU's wiring), the KVM VFIO device's
 * FORWARD_IRQ / UNFORWARD_IRQ with their EAGAIN/EBUSY rules, irq bypass pairing, the
 * VFIO_DEVICE_SET_IRQS / GET_IRQ_INFO uapi, and teardown.
 *
 * Synchronisation: no sleeps. Every wait is a bounded poll of shared counters or guest RAM that
 * fails with the state it saw. "Nothing happened" is observed through a device barrier: a control
 * message (raise(i, 0)) is acknowledged by the device thread only in the loop iteration after the
 * one that applied the previous message, so once it returns that earlier iteration's deliveries
 * are done.
 */
import { describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { ECHO, KvmError, guestFromFunction, type GuestCpu, type KvmDevice, type Vm } from '../../src/index.js';
import {
  KVM_ARM_IRQ_TYPE_PPI, KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ,
  KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, kvmIrqLineField,
} from '../../src/uapi/kvm.js';
import { EventFd } from '../../src/eventfd/eventfd.js';
import { VfioPlatformDevice, type VfioIrqCounts, type VfioIrqType } from '../../src/kvm/vfio/platform-device.js';
import {
  VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
} from '../../src/uapi/vfio.js';
import { buildV3, expectErrno, startRun, waitFor, waitRam, within, type RunHandle } from '../helpers.js';

// ---------------------------------------------------------------------------------------------
// Rig: a GICv3 VM running irq-echo on every vCPU, VFIO devices, and QEMU's wiring per line.
// ---------------------------------------------------------------------------------------------

interface Wire {
  dev: VfioPlatformDevice;
  index: number;
  type: VfioIrqType;
  gsi: number;
  spi: number;
  trigger: EventFd;
  /** Level lines: the irqfd's resamplefd, which is also the device's unmask eventfd. */
  resample: EventFd | null;
}

/**
 * irq-echo with two gates, for interrupts held in flight: IRQs stay masked (PSTATE.I) until RAM
 * word GATE is set, and while word HOLD_EOI is set the handler acknowledges an SPI but waits before
 * its EOI (the SPI stays active in the guest). Same RAM layout as irq-echo otherwise (READY, STOP,
 * SPI_ACKS + intid); EOIS counts SPI EOIs. vCPU 0 configures the SPIs and enables the distributor
 * before it reports ready, so an interrupt raised afterwards is queued (spec §3.8: one pending
 * before the distributor is enabled would never be).
 */
const GATE = 2;
const HOLD_EOI = 3;
const EOIS = 4;
const gatedEcho = guestFromFunction(function gatedEcho(cpu: GuestCpu, args: { spis: number[]; level: number[] }) {
  const n = cpu.nrVcpus;
  cpu.initCpuInterface();
  cpu.driver.enable(23);
  if (cpu.id === 0) {
    args.spis.forEach((spi, i) => {
      cpu.driver.route(spi, i % n);
      if (args.level.includes(spi)) cpu.driver.setEdge(spi, false);
      cpu.driver.enable(spi);
    });
    cpu.driver.enableDistributor();
  }
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const id = iar & 0x3ff;
    if (id >= 32) {
      c.add(64 + id, 1);
      while (c.load(3) !== 0 && c.load(1) === 0) c.relax();
    }
    c.eoi(iar);
    if (id >= 32) c.add(4, 1);
  });
  cpu.add(0, 1);
  while (cpu.load(2) === 0 && cpu.load(1) === 0) cpu.relax();
  cpu.enableIrqs();
  while (cpu.load(1) === 0) cpu.wfi();
  return 0;
});

interface RigOptions {
  vcpus: number;
  /** 'gated': gatedEcho (IRQs masked until GATE is set); default irq-echo. */
  guest?: 'echo' | 'gated';
  devices: { irqs: VfioIrqType[]; fastPath?: boolean; name?: string }[];
  irqBypass?: boolean;
  /** Wire trigger/unmask eventfds and irqfds (default true). */
  wire?: boolean;
  gsiBase?: number;
}

interface Rig {
  vm: Vm;
  devs: VfioPlatformDevice[];
  wires: Wire[];
  run: RunHandle | null;
}

const GSI_BASE = 8;

function makeRig(o: RigOptions): Rig {
  let gsi = o.gsiBase ?? GSI_BASE;
  const plan: { d: number; index: number; type: VfioIrqType; gsi: number }[] = [];
  o.devices.forEach((d, di) => d.irqs.forEach((type, index) => plan.push({ d: di, index, type, gsi: gsi++ })));
  const spis = plan.map((p) => p.gsi + 32);
  const level = plan.filter((p) => p.type === 'level').map((p) => p.gsi + 32);
  const guest = o.guest === 'gated' ? { guest: gatedEcho, args: { spis, level } } : { guest: 'irq-echo', args: { spis, forwardSgi: -1, level } };
  const { vm } = buildV3({ vcpus: o.vcpus, ...guest, vm: { maxVcpus: Math.max(o.vcpus, 2), irqBypass: o.irqBypass ?? false } });
  try {
    const devs = o.devices.map((d) => new VfioPlatformDevice(vm, { irqs: d.irqs, fastPath: d.fastPath, name: d.name }));
    const wires: Wire[] = plan.map((p) => ({ dev: devs[p.d]!, index: p.index, type: p.type, gsi: p.gsi, spi: p.gsi + 32, trigger: new EventFd(), resample: p.type === 'level' ? new EventFd() : null }));
    if (o.wire !== false) for (const w of wires) wireLine(vm, w);
    return { vm, devs, wires, run: null };
  } catch (e) {
    void vm.destroy();
    throw e;
  }
}

/** QEMU's order: VFIO_DEVICE_SET_IRQS trigger, unmask eventfd, then KVM_IRQFD (RESAMPLE for level). */
function wireLine(vm: Vm, w: Wire): void {
  w.dev.setTrigger(w.index, w.trigger);
  if (w.resample) w.dev.setUnmaskEventFd(w.index, w.resample);
  vm.irqfd(w.resample ? { fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: w.resample } : { fd: w.trigger, gsi: w.gsi });
}

/** Start every vCPU and wait until each guest is ready (vCPU 0 has configured the SPIs by then). */
async function go(r: Rig): Promise<RunHandle> {
  const run = startRun(r.vm);
  r.run = run;
  const n = r.vm.vcpus.length;
  await waitRam(r.vm, ECHO.READY, 15_000, `all ${n} irq-echo guests to be ready`, run, (v) => v === n);
  return run;
}

/** End the guests the irq-echo way: STOP, then the doorbell PPI on each vCPU. */
async function stopGuests(r: Rig): Promise<void> {
  if (!r.run) return;
  Atomics.store(r.vm.ram, ECHO.STOP, 1);
  Atomics.store(r.vm.ram, HOLD_EOI, 0);
  for (let v = 0; v < r.vm.vcpus.length; v++) r.vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, v, ECHO.DOORBELL_PPI), 1);
  const res = await within(r.run.promise, 10_000, 'the irq-echo guests to return after STOP');
  expect(res.map((x) => x.reason)).toEqual(r.vm.vcpus.map(() => 'shutdown'));
}

/** Build a rig, run `body`, always destroy the VM (bounded) so that no thread is left. */
async function withRig(o: RigOptions, body: (r: Rig) => Promise<void>): Promise<void> {
  const r = makeRig(o);
  try {
    await body(r);
  } finally {
    await within(r.vm.destroy(), 15_000, 'vm.destroy()');
  }
}

const acks = (vm: Vm, spi: number): number => Atomics.load(vm.ram, ECHO.SPI_ACKS + spi);

function irqfdOf(vm: Vm, gsi: number) {
  const f = vm.irqfds().find((x) => x.gsi === gsi);
  if (!f) throw new Error(`no irqfd on gsi ${gsi}`);
  return f;
}

function describeLine(r: Rig, w: Wire): string {
  const f = r.vm.irqfds().find((x) => x.gsi === w.gsi);
  const irqfd = f ? ` irqfd{consumed ${f.consumed} fast ${f.fastInjections} slow ${f.slowInjections} dropped ${f.dropped} resamples ${f.resamples}}` : ' (no irqfd)';
  return `${w.dev.name}[${w.index}] ${w.type} gsi ${w.gsi}: ${JSON.stringify(w.dev.counts(w.index))} acks ${acks(r.vm, w.spi)}${irqfd}`;
}

/** Bounded poll for `pred`; on timeout (or a failed vCPU/device thread) report every line's state. */
async function until(r: Rig, pred: () => boolean, what: string, ms = 30_000): Promise<void> {
  try {
    await waitFor(() => {
      for (const d of r.devs) if (d.failure) throw new Error(`${d.name}: device thread failed: ${d.failure.message}`);
      return pred();
    }, ms, what, r.run ?? undefined);
  } catch (e) {
    (e as Error).message += `\n  lines:\n    ${r.wires.map((w) => describeLine(r, w)).join('\n    ')}`;
    throw e;
  }
}

/** Device barrier: once this returns, every delivery the device could make before it was made. */
function barrier(dev: VfioPlatformDevice): void {
  dev.raise(0, 0);
  dev.raise(0, 0);
}

const fwdArg = (w: Pick<Wire, 'dev' | 'index' | 'gsi'>) => ({ fd: w.dev, index: w.index, start: 0, count: 1, gsi: w.gsi });
const forward = (kv: KvmDevice, w: Pick<Wire, 'dev' | 'index' | 'gsi'>): void => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, fwdArg(w));
const unforward = (kv: KvmDevice, w: Pick<Wire, 'dev' | 'index' | 'gsi'>): void => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ, fwdArg(w));

const pick = (c: VfioIrqCounts, ...keys: (keyof VfioIrqCounts)[]) => Object.fromEntries(keys.map((k) => [k, c[k]]));

// ---------------------------------------------------------------------------------------------

describe('level storm through irqfd + resamplefd (software path)', () => {
  it('2 devices x 2 level lines into 4 vCPUs: every event raised, signalled, acked once, resampled once, unmasked once', async () => {
    const N = 600;
    await withRig({ vcpus: 4, devices: [{ irqs: ['level', 'level'] }, { irqs: ['level', 'level'] }] }, async (r) => {
      await go(r);
      for (const w of r.wires) w.dev.start(w.index, { kind: 'random', count: N, meanGapMs: 0.05, seed: 0x5eed + w.gsi });
      await until(r, () => r.wires.every((w) => {
        const c = w.dev.counts(w.index);
        const f = irqfdOf(r.vm, w.gsi);
        return c.serviced === N && c.unmasks >= N && f.resamples >= N && acks(r.vm, w.spi) >= N && f.fastInjections + f.slowInjections >= N;
      }), `every line to have ${N} events serviced`);
      for (const w of r.wires) {
        const c = w.dev.counts(w.index);
        const f = irqfdOf(r.vm, w.gsi);
        expect({
          ...pick(c, 'raised', 'signalled', 'serviced', 'unmasks', 'hwDeactivations', 'masked', 'active', 'forwarded', 'outstanding'),
          acks: acks(r.vm, w.spi), resamples: f.resamples, consumed: f.consumed, injections: f.fastInjections + f.slowInjections, dropped: f.dropped,
        }, describeLine(r, w)).toEqual({
          raised: N, signalled: N, serviced: N, unmasks: N, hwDeactivations: 0, masked: false, active: false, forwarded: false, outstanding: 0,
          acks: N, resamples: N, consumed: N, injections: N, dropped: 0,
        });
      }
      await stopGuests(r);
    });
  });
});

describe('level storm with irq bypass (forwarded, HW-mapped LRs)', () => {
  it('every line is forwarded; each event completes by the guest deactivation: no resample, no unmask', async () => {
    const N = 600;
    await withRig({ vcpus: 4, irqBypass: true, devices: [{ irqs: ['level', 'level'] }, { irqs: ['level', 'level'] }] }, async (r) => {
      await until(r, () => r.wires.every((w) => w.dev.counts(w.index).forwarded), 'every line to be forwarded by irq bypass', 5000);
      await go(r);
      for (const w of r.wires) w.dev.start(w.index, { kind: 'random', count: N, meanGapMs: 0.05, seed: 0xb1a5 + w.gsi });
      await until(r, () => r.wires.every((w) => {
        const c = w.dev.counts(w.index);
        return c.serviced === N && c.hwDeactivations >= N && acks(r.vm, w.spi) >= N;
      }), `every forwarded line to have ${N} events serviced`);
      for (const w of r.wires) {
        const c = w.dev.counts(w.index);
        const f = irqfdOf(r.vm, w.gsi);
        expect({
          ...pick(c, 'raised', 'signalled', 'serviced', 'unmasks', 'hwDeactivations', 'forwarded', 'active', 'masked'),
          acks: acks(r.vm, w.spi), resamples: f.resamples,
        }, describeLine(r, w)).toEqual({
          raised: N, signalled: N, serviced: N, unmasks: 0, hwDeactivations: N, forwarded: true, active: false, masked: false,
          acks: N, resamples: 0,
        });
      }
      await stopGuests(r);
    });
  });
});

describe('edge lines through the irqfd fast path and the injector', () => {
  it.each([
    { fastPath: true, label: 'fast path (device thread injects)' },
    { fastPath: false, label: 'injector worker (slow path)' },
  ])('$label: a rate storm is fully signalled and consumed (coalescing allowed), then 200 credited edges are acked exactly', async ({ fastPath }) => {
    const N = 500;
    const CREDITS = 200;
    await withRig({ vcpus: 2, devices: [{ irqs: ['edge', 'edge'], fastPath }] }, async (r) => {
      await go(r);
      const [storm, credit] = r.wires as [Wire, Wire];
      storm.dev.start(storm.index, { kind: 'rate', count: N, periodMs: 0.01 });
      await until(r, () => {
        const c = storm.dev.counts(storm.index);
        const f = irqfdOf(r.vm, storm.gsi);
        // consumed counts before the injection, the injection counters after it: wait for both.
        return c.serviced === N && f.consumed >= c.signalled && f.fastInjections + f.slowInjections >= 1 && acks(r.vm, storm.spi) >= 1;
      }, `the edge storm of ${N} to be signalled and consumed`);
      const c = storm.dev.counts(storm.index);
      const f = irqfdOf(r.vm, storm.gsi);
      const a = acks(r.vm, storm.spi);
      expect(pick(c, 'raised', 'signalled', 'serviced', 'unmasks', 'hwDeactivations', 'masked', 'active', 'forwarded'), describeLine(r, storm)).toEqual({
        raised: N, signalled: N, serviced: N, unmasks: 0, hwDeactivations: 0, masked: false, active: false, forwarded: false,
      });
      expect(f.consumed, describeLine(r, storm)).toBe(c.signalled);
      expect(f.dropped).toBe(0);
      if (fastPath) {
        expect(f.fastInjections, describeLine(r, storm)).toBeGreaterThan(0);
        expect(f.slowInjections, describeLine(r, storm)).toBe(0);
      } else {
        expect(f.slowInjections, describeLine(r, storm)).toBeGreaterThan(0);
        expect(f.fastInjections, describeLine(r, storm)).toBe(0);
      }
      expect(a).toBeGreaterThanOrEqual(1);
      expect(a).toBeLessThanOrEqual(c.signalled);

      // Credits: one edge in flight at a time, so none can coalesce.
      for (let i = 0; i < CREDITS; i++) {
        credit.dev.raise(credit.index, 1);
        await until(r, () => acks(r.vm, credit.spi) >= i + 1, `credited edge #${i + 1} to be acked`, 10_000);
      }
      await until(r, () => {
        const f = irqfdOf(r.vm, credit.gsi);
        return f.consumed >= CREDITS && f.fastInjections + f.slowInjections >= CREDITS;
      }, 'every credited edge to be consumed and counted as injected', 10_000);
      const cc = credit.dev.counts(credit.index);
      const cf = irqfdOf(r.vm, credit.gsi);
      expect(acks(r.vm, credit.spi), describeLine(r, credit)).toBe(CREDITS);
      expect(pick(cc, 'raised', 'signalled', 'serviced'), describeLine(r, credit)).toEqual({ raised: CREDITS, signalled: CREDITS, serviced: CREDITS });
      expect(cf.consumed).toBe(CREDITS);
      if (fastPath) expect([cf.fastInjections, cf.slowInjections]).toEqual([CREDITS, 0]);
      else expect([cf.fastInjections, cf.slowInjections]).toEqual([0, CREDITS]);
      await stopGuests(r);
    });
  });
});

describe('KVM VFIO device: FORWARD_IRQ / UNFORWARD_IRQ rules', () => {
  it('EAGAIN while a level line is automasked with its interrupt in flight; forwarding succeeds once the resample unmasked it', async () => {
    await withRig({ vcpus: 2, guest: 'gated', devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      await go(r); // guests ready, IRQs masked (gate closed)
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).masked && irqfdOf(r.vm, w.gsi).consumed === 1, 'the level line to be delivered and automasked', 10_000);
      expect(pick(w.dev.counts(0), 'raised', 'signalled', 'serviced', 'masked', 'active')).toEqual({ raised: 1, signalled: 1, serviced: 0, masked: true, active: false });
      expectErrno(() => forward(kv, w), 'EAGAIN');
      expect(w.dev.counts(0).forwarded).toBe(false);
      // The guest handles it, its EOI resamples, the unmask eventfd completes the event.
      Atomics.store(r.vm.ram, GATE, 1);
      await until(r, () => w.dev.counts(0).serviced === 1 && w.dev.counts(0).unmasks >= 1 && irqfdOf(r.vm, w.gsi).resamples >= 1, 'the guest to complete it through the resample path', 10_000);
      expect(acks(r.vm, w.spi)).toBe(1);
      expect(pick(w.dev.counts(0), 'unmasks', 'hwDeactivations', 'masked')).toEqual({ unmasks: 1, hwDeactivations: 0, masked: false });
      forward(kv, w);
      expect(w.dev.counts(0).forwarded).toBe(true);
      // And now an event goes the HW way.
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).hwDeactivations === 1 && acks(r.vm, w.spi) === 2, 'the forwarded event to be deactivated by the guest', 10_000);
      expect(pick(w.dev.counts(0), 'serviced', 'unmasks')).toEqual({ serviced: 2, unmasks: 1 });
      expect(irqfdOf(r.vm, w.gsi).resamples).toBe(1);
      await stopGuests(r);
    });
  });

  it('EAGAIN while the SPI is active in the guest (acked, not yet EOId); forwarding succeeds after the EOI', async () => {
    await withRig({ vcpus: 1, guest: 'gated', devices: [{ irqs: ['edge'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      Atomics.store(r.vm.ram, HOLD_EOI, 1);
      Atomics.store(r.vm.ram, GATE, 1);
      await go(r);
      w.dev.raise(0, 1);
      await until(r, () => acks(r.vm, w.spi) === 1, 'the guest to acknowledge the edge SPI', 10_000);
      // The edge event was completed by the host at delivery: only the guest's active state refuses.
      expect(pick(w.dev.counts(0), 'serviced', 'masked', 'active')).toEqual({ serviced: 1, masked: false, active: false });
      expectErrno(() => forward(kv, w), 'EAGAIN');
      expect(w.dev.counts(0).forwarded).toBe(false);
      Atomics.store(r.vm.ram, HOLD_EOI, 0);
      await waitRam(r.vm, EOIS, 10_000, 'the guest to EOI the SPI', r.run!, (v) => v === 1);
      forward(kv, w);
      expect(w.dev.counts(0).forwarded).toBe(true);
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).hwDeactivations === 1 && Atomics.load(r.vm.ram, EOIS) === 2, 'the forwarded edge to be deactivated by the guest', 10_000);
      expect(acks(r.vm, w.spi)).toBe(2);
      await stopGuests(r);
    });
  });

  it('an active forwarded line: a second line cannot take the SPI (EBUSY); UNFORWARD hands the instance to the resample path', async () => {
    await withRig({ vcpus: 2, guest: 'gated', devices: [{ irqs: ['level'] }, { irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const [a, b] = r.wires as [Wire, Wire];
      await go(r);
      forward(kv, a);
      expect(a.dev.counts(0).forwarded).toBe(true);
      forward(kv, a); // idempotent for the same SPI
      a.dev.raise(0, 1);
      await until(r, () => a.dev.counts(0).active && irqfdOf(r.vm, a.gsi).consumed === 1, 'the forwarded line to be active', 10_000);
      expect(pick(a.dev.counts(0), 'signalled', 'masked', 'active', 'forwarded')).toEqual({ signalled: 1, masked: false, active: true, forwarded: true });
      // Another device's line onto the same SPI; the same line onto another SPI.
      expectErrno(() => forward(kv, { dev: b.dev, index: 0, gsi: a.gsi }), 'EBUSY');
      expect(b.dev.counts(0).forwarded).toBe(false);
      expectErrno(() => forward(kv, { dev: a.dev, index: 0, gsi: b.gsi }), 'EBUSY');
      // Unforwarding an active level instance: it becomes automasked, waiting for its resample.
      unforward(kv, a);
      expect(pick(a.dev.counts(0), 'forwarded', 'active', 'masked', 'serviced')).toEqual({ forwarded: false, active: false, masked: true, serviced: 0 });
      // Forwarding it back now is refused: the event is in flight in software.
      expectErrno(() => forward(kv, a), 'EAGAIN');
      Atomics.store(r.vm.ram, GATE, 1);
      await until(r, () => a.dev.counts(0).serviced === 1 && a.dev.counts(0).unmasks >= 1 && irqfdOf(r.vm, a.gsi).resamples >= 1, 'the unforwarded instance to complete through the resample path', 10_000);
      expect(acks(r.vm, a.spi)).toBe(1);
      expect(pick(a.dev.counts(0), 'serviced', 'unmasks', 'hwDeactivations', 'masked', 'active')).toEqual({ serviced: 1, unmasks: 1, hwDeactivations: 0, masked: false, active: false });
      expect(irqfdOf(r.vm, a.gsi).resamples).toBe(1);
      // The SPI is free again: b can take it now, and give it back.
      forward(kv, { dev: b.dev, index: 0, gsi: a.gsi });
      expect(b.dev.counts(0).forwarded).toBe(true);
      unforward(kv, { dev: b.dev, index: 0, gsi: a.gsi });
      forward(kv, a);
      await stopGuests(r);
    });
  });

  it('UNFORWARD while the guest holds the forwarded level interrupt active: its EOI completes it by resample', async () => {
    await withRig({ vcpus: 1, guest: 'gated', devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      Atomics.store(r.vm.ram, HOLD_EOI, 1);
      Atomics.store(r.vm.ram, GATE, 1);
      await go(r);
      forward(kv, w);
      w.dev.raise(0, 1);
      await until(r, () => acks(r.vm, w.spi) === 1, 'the guest to acknowledge the forwarded SPI', 10_000);
      expect(w.dev.counts(0).active).toBe(true);
      unforward(kv, w);
      expect(pick(w.dev.counts(0), 'forwarded', 'active', 'masked', 'serviced')).toEqual({ forwarded: false, active: false, masked: true, serviced: 0 });
      Atomics.store(r.vm.ram, HOLD_EOI, 0);
      await until(r, () => w.dev.counts(0).serviced === 1 && w.dev.counts(0).unmasks >= 1 && irqfdOf(r.vm, w.gsi).resamples >= 1, 'the EOI to resample and unmask', 10_000);
      expect(pick(w.dev.counts(0), 'unmasks', 'hwDeactivations', 'masked')).toEqual({ unmasks: 1, hwDeactivations: 0, masked: false });
      expect(irqfdOf(r.vm, w.gsi).resamples).toBe(1);
      // The next one (still unforwarded) goes the software way too, and only once.
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).serviced === 2 && irqfdOf(r.vm, w.gsi).resamples >= 2, 'the next event by resample', 10_000);
      expect(acks(r.vm, w.spi)).toBe(2);
      expect(irqfdOf(r.vm, w.gsi).resamples).toBe(2);
      await stopGuests(r);
    });
  });

  it('an active forwarded edge line is completed by the host on UNFORWARD; the guest still handles its copy', async () => {
    await withRig({ vcpus: 1, guest: 'gated', devices: [{ irqs: ['edge'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      await go(r);
      forward(kv, w);
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).active && irqfdOf(r.vm, w.gsi).consumed === 1, 'the forwarded edge line to be active', 10_000);
      unforward(kv, w);
      expect(pick(w.dev.counts(0), 'forwarded', 'active', 'masked', 'serviced', 'hwDeactivations')).toEqual({ forwarded: false, active: false, masked: false, serviced: 1, hwDeactivations: 0 });
      Atomics.store(r.vm.ram, GATE, 1);
      await until(r, () => acks(r.vm, w.spi) === 1 && Atomics.load(r.vm.ram, EOIS) === 1, 'the guest to handle the virtual copy', 10_000);
      w.dev.raise(0, 1);
      await until(r, () => acks(r.vm, w.spi) === 2, 'a software edge after unforward', 10_000);
      expect(pick(w.dev.counts(0), 'raised', 'signalled', 'serviced', 'hwDeactivations')).toEqual({ raised: 2, signalled: 2, serviced: 2, hwDeactivations: 0 });
      await stopGuests(r);
    });
  });

  it('bad input: ENXIO, EINVAL, EBADF, EFAULT; one KVM VFIO device per VM (EBUSY); FILE group ADD/DEL', async () => {
    await withRig({ vcpus: 1, devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      expect(kv.type).toBe(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      expectErrno(() => r.vm.createDevice(KVM_DEV_TYPE_VFIO), 'EBUSY');
      expect(() => r.vm.createDevice(KVM_DEV_TYPE_VFIO, { test: true })).not.toThrow();
      // Unknown attributes / groups.
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, 99, fwdArg(w)), 'ENXIO');
      expectErrno(() => kv.setAttr(77, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, fwdArg(w)), 'ENXIO');
      expectErrno(() => kv.hasAttr(KVM_DEV_VFIO_DEVICE, 99), 'ENXIO');
      expect(() => kv.hasAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ)).not.toThrow();
      expect(() => kv.hasAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ)).not.toThrow();
      expectErrno(() => kv.getAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ), 'ENXIO');
      // Bad GSIs.
      for (const gsi of [-1, 5000, 1.5]) expectErrno(() => forward(kv, { dev: w.dev, index: 0, gsi }), 'EINVAL');
      // Bad struct contents.
      // No struct to copy from user: EFAULT (copy_from_user), as for every user-pointer argument.
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ), 'EFAULT');
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { ...fwdArg(w), index: 1 }), 'EINVAL');
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { ...fwdArg(w), count: 2 }), 'EINVAL');
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { ...fwdArg(w), start: 1 }), 'EINVAL');
      // Not a VFIO device.
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { ...fwdArg(w), fd: w.trigger }), 'EBADF');
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { ...fwdArg(w), fd: {} }), 'EBADF');
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, w.trigger), 'EBADF');
      // Unforward of a line that is not forwarded.
      expectErrno(() => unforward(kv, w), 'EINVAL');
      // FILE group.
      kv.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, w.dev);
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, w.dev), 'EEXIST');
      kv.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_DEL, w.dev);
      expectErrno(() => kv.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_DEL, w.dev), 'ENOENT');
      // None of this changed the line.
      expect(pick(w.dev.counts(0), 'forwarded', 'masked', 'active', 'raised')).toEqual({ forwarded: false, masked: false, active: false, raised: 0 });
    });
  });

  it('a device of another VM is refused (EINVAL)', async () => {
    await withRig({ vcpus: 1, devices: [{ irqs: ['level'] }] }, async (r) => {
      await withRig({ vcpus: 1, devices: [{ irqs: ['level'] }] }, async (other) => {
        const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
        expectErrno(() => forward(kv, { dev: other.devs[0]!, index: 0, gsi: GSI_BASE }), 'EINVAL');
        expect(other.devs[0]!.counts(0).forwarded).toBe(false);
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------

interface ToggleResult {
  toggles: number;
  underLoad: number;
  eagain: number;
  /** Events raised per line in all: `perBatch` times the batches it took. */
  total: number;
}

/**
 * Toggle forwarding of every line through the KVM VFIO device (EAGAIN: try again next round)
 * while the devices raise batches of `perBatch` events per line (`startBatch(b)` starts batch b
 * on every line). How many toggles land while events are outstanding depends on how the threads
 * are scheduled (a busy machine keeps the lines active, so most attempts get EAGAIN), so instead
 * of hoping one batch is enough, another batch starts whenever one drains before `minUnderLoad`
 * such toggles were made: the totals stay exact (`total` per line) whatever the machine does.
 * Bounded by `ms`.
 */
async function toggleForwarding(
  r: Rig,
  kv: KvmDevice,
  startBatch: (b: number) => void,
  perBatch: number,
  minUnderLoad: number,
  ms: number,
): Promise<ToggleResult> {
  const res: ToggleResult = { toggles: 0, underLoad: 0, eagain: 0, total: 0 };
  const deadline = Date.now() + ms;
  const loaded = (): boolean => r.wires.some((w) => w.dev.counts(w.index).serviced < res.total);
  for (let batch = 0; ; ) {
    if (!loaded()) {
      if (res.underLoad >= minUnderLoad) break;
      startBatch(batch++);
      res.total += perBatch;
    }
    for (const w of r.wires) {
      const fwd = w.dev.counts(w.index).forwarded;
      try {
        if (fwd) unforward(kv, w);
        else forward(kv, w);
        res.toggles++;
        if (loaded()) res.underLoad++;
        expect(w.dev.counts(w.index).forwarded, `${describeLine(r, w)} after a successful toggle`).toBe(!fwd);
      } catch (e) {
        if (!(e instanceof KvmError && e.code === 'EAGAIN')) throw e;
        res.eagain++;
      }
    }
    for (const d of r.devs) if (d.failure) throw new Error(`${d.name}: device thread failed: ${d.failure.message}`);
    if (r.run?.error) throw new Error(`the VM run failed while toggling: ${String(r.run.error)}`);
    if (Date.now() > deadline) {
      throw new Error(`toggling: timed out after ${ms} ms (${JSON.stringify(res)})\n    ${r.wires.map((w) => describeLine(r, w)).join('\n    ')}`);
    }
    // Let the event loop breathe (the poll interval, not synchronisation).
    await new Promise<void>((res2) => setImmediate(res2));
  }
  return res;
}

describe('forward and unforward under load: nothing lost, nothing completed twice', () => {
  it('level lines: every event acked once and completed once, by resample or by HW deactivation', async () => {
    const PER_BATCH = 400;
    await withRig({ vcpus: 2, devices: [{ irqs: ['level', 'level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      await go(r);
      const batch = (b: number): void => {
        for (const w of r.wires) w.dev.start(w.index, { kind: 'random', count: PER_BATCH, meanGapMs: 0.4, seed: 0x70661e + w.gsi + 97 * b });
      };
      const N = (await toggleForwarding(r, kv, batch, PER_BATCH, 20, 60_000)).total;
      await until(r, () => r.wires.every((w) => {
        const c = w.dev.counts(w.index);
        return c.serviced === N && c.hwDeactivations + irqfdOf(r.vm, w.gsi).resamples >= N && c.hwDeactivations + c.unmasks >= N && acks(r.vm, w.spi) >= N;
      }), 'every level event to be completed');
      let hw = 0;
      let sw = 0;
      for (const w of r.wires) {
        const c = w.dev.counts(w.index);
        const f = irqfdOf(r.vm, w.gsi);
        const d = describeLine(r, w);
        expect(pick(c, 'raised', 'signalled', 'serviced', 'outstanding', 'active'), d).toEqual({ raised: N, signalled: N, serviced: N, outstanding: 0, active: false });
        expect(acks(r.vm, w.spi), d).toBe(N);
        expect(f.resamples + c.hwDeactivations, `${d}: resamples + hwDeactivations`).toBe(N);
        expect(c.unmasks + c.hwDeactivations, `${d}: unmasks + hwDeactivations`).toBe(N);
        hw += c.hwDeactivations;
        sw += f.resamples;
      }
      // Both paths were really used.
      expect(hw, 'events completed by HW deactivation').toBeGreaterThan(0);
      expect(sw, 'events completed by resample').toBeGreaterThan(0);
      await stopGuests(r);
    });
  });

  it('edge lines: every event signalled and serviced once; acks within coalescing bounds; then exact with credits', async () => {
    const PER_BATCH = 400;
    const CREDITS = 60;
    await withRig({ vcpus: 2, devices: [{ irqs: ['edge', 'edge'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      await go(r);
      const batch = (b: number): void => {
        for (const w of r.wires) w.dev.start(w.index, { kind: 'random', count: PER_BATCH, meanGapMs: 0.4, seed: 0xed9e + w.gsi + 97 * b });
      };
      const N = (await toggleForwarding(r, kv, batch, PER_BATCH, 20, 60_000)).total;
      await until(r, () => r.wires.every((w) => {
        const c = w.dev.counts(w.index);
        return c.serviced === N && irqfdOf(r.vm, w.gsi).consumed >= c.signalled && acks(r.vm, w.spi) >= 1;
      }), 'every edge event to be serviced');
      for (const w of r.wires) {
        const c = w.dev.counts(w.index);
        const d = describeLine(r, w);
        expect(pick(c, 'raised', 'signalled', 'serviced', 'outstanding', 'masked'), d).toEqual({ raised: N, signalled: N, serviced: N, outstanding: 0, masked: false });
        expect(irqfdOf(r.vm, w.gsi).consumed, d).toBe(N);
        expect(c.hwDeactivations, d).toBeLessThanOrEqual(N);
        expect(acks(r.vm, w.spi), d).toBeGreaterThanOrEqual(1);
        expect(acks(r.vm, w.spi), d).toBeLessThanOrEqual(N);
      }
      // Exactness with credits, toggling between each: one edge in flight at a time, each acked once.
      for (const w of r.wires) {
        const base = acks(r.vm, w.spi);
        const c0 = w.dev.counts(w.index);
        let eagain = 0;
        for (let i = 0; i < CREDITS; i++) {
          // The previous credit was acknowledged and serviced, but its EOI (and so the line's
          // deactivation) may still be on the way: EAGAIN means "try again", so retry, bounded.
          const fwd = w.dev.counts(w.index).forwarded;
          for (const deadline = Date.now() + 10_000; ; ) {
            try {
              if (fwd) unforward(kv, w);
              else forward(kv, w);
              break;
            } catch (e) {
              if (!(e instanceof KvmError && e.code === 'EAGAIN')) throw e;
              if (Date.now() > deadline) throw new Error(`credit #${i + 1}: toggling still EAGAIN after 10 s (${eagain} EAGAINs): ${describeLine(r, w)}`);
              eagain++;
              await new Promise<void>((res) => setImmediate(res));
            }
          }
          expect(w.dev.counts(w.index).forwarded, `credit #${i + 1}: toggled`).toBe(!fwd);
          w.dev.raise(w.index, 1);
          await until(r, () => acks(r.vm, w.spi) >= base + i + 1 && w.dev.counts(w.index).serviced === c0.serviced + i + 1, `credited edge #${i + 1} to be acked and serviced`, 10_000);
        }
        expect(acks(r.vm, w.spi) - base, describeLine(r, w)).toBe(CREDITS);
      }
      await stopGuests(r);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('irq bypass pairing (createVm({ irqBypass: true }))', () => {
  it('trigger first then irqfd: forwarded; deassigning the irqfd unforwards', async () => {
    await withRig({ vcpus: 1, irqBypass: true, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const w = r.wires[0]!;
      w.dev.setTrigger(0, w.trigger);
      w.dev.setUnmaskEventFd(0, w.resample);
      expect(w.dev.counts(0).forwarded).toBe(false);
      r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: w.resample! });
      await until(r, () => w.dev.counts(0).forwarded, 'the line to be forwarded once the irqfd pairs with the trigger', 5000);
      r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_DEASSIGN });
      expect(w.dev.counts(0).forwarded).toBe(false);
      // And the pairing works again on a new irqfd.
      r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: w.resample! });
      await until(r, () => w.dev.counts(0).forwarded, 'the line to be forwarded again', 5000);
    });
  });

  it('irqfd first then trigger: forwarded; removing the trigger (setTrigger(i, null)) unforwards', async () => {
    await withRig({ vcpus: 1, irqBypass: true, wire: false, devices: [{ irqs: ['level', 'edge'] }] }, async (r) => {
      for (const w of r.wires) {
        if (w.resample) r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: w.resample });
        else r.vm.irqfd({ fd: w.trigger, gsi: w.gsi });
        expect(w.dev.counts(w.index).forwarded).toBe(false);
        w.dev.setTrigger(w.index, w.trigger);
        if (w.resample) w.dev.setUnmaskEventFd(w.index, w.resample);
        await until(r, () => w.dev.counts(w.index).forwarded, `${w.type} line to be forwarded once the trigger pairs with the irqfd`, 5000);
        w.dev.setTrigger(w.index, null);
        expect(w.dev.counts(w.index).forwarded).toBe(false);
        // Setting the same trigger again pairs again.
        w.dev.setTrigger(w.index, w.trigger);
        await until(r, () => w.dev.counts(w.index).forwarded, `${w.type} line to be forwarded again`, 5000);
      }
    });
  });

  it('pairing while the level line is automasked retries until the resample unmasked it, then forwards', async () => {
    await withRig({ vcpus: 2, guest: 'gated', irqBypass: true, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const w = r.wires[0]!;
      await go(r); // IRQs masked in the guests until GATE
      w.dev.setTrigger(0, w.trigger);
      w.dev.setUnmaskEventFd(0, w.resample);
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).masked && w.trigger.value === 1n, 'the level line to be automasked and signalled', 10_000);
      // The irqfd takes the count already in the eventfd (the injector); pairing gets EAGAIN and retries.
      r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: w.resample! });
      expect(w.dev.counts(0).forwarded).toBe(false);
      await until(r, () => irqfdOf(r.vm, w.gsi).slowInjections === 1, 'the injector to inject the count left in the eventfd', 10_000);
      expect(w.dev.counts(0).forwarded, 'forwarded while the line is still automasked').toBe(false);
      Atomics.store(r.vm.ram, GATE, 1);
      await until(r, () => w.dev.counts(0).serviced === 1 && w.dev.counts(0).unmasks >= 1 && w.dev.counts(0).forwarded, 'the resample to complete the event and the retry to forward', 10_000);
      expect(acks(r.vm, w.spi)).toBe(1);
      expect(pick(w.dev.counts(0), 'unmasks', 'hwDeactivations')).toEqual({ unmasks: 1, hwDeactivations: 0 });
      w.dev.raise(0, 1);
      await until(r, () => w.dev.counts(0).hwDeactivations === 1 && acks(r.vm, w.spi) === 2, 'the next event to complete by HW deactivation', 10_000);
      expect(irqfdOf(r.vm, w.gsi).resamples).toBe(1);
      await stopGuests(r);
    });
  });

  it('after a manual UNFORWARD of a bypass-forwarded line, KVM_IRQFD DEASSIGN still succeeds and removes the irqfd', async () => {
    await withRig({ vcpus: 1, irqBypass: true, devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      await until(r, () => w.dev.counts(0).forwarded, 'irq bypass to forward the line', 5000);
      unforward(kv, w); // allowed: "unforwarding is always allowed"
      let err: unknown = null;
      try {
        r.vm.irqfd({ fd: w.trigger, gsi: w.gsi, flags: KVM_IRQFD_FLAG_DEASSIGN });
      } catch (e) {
        err = e;
      }
      const left = r.vm.irqfds().length;
      // Repair before asserting, or destroy() would hit the same EINVAL and leave every thread running.
      if (err) forward(kv, w);
      expect(err, 'KVM_IRQFD deassign must not fail because the bypass consumer\'s unforward does').toBeNull();
      expect(left, 'irqfds left after deassign').toBe(0);
    });
  });

  it('after a manual UNFORWARD of a bypass-forwarded line, removing the VFIO trigger and close() still succeed', async () => {
    await withRig({ vcpus: 1, irqBypass: true, devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const w = r.wires[0]!;
      await until(r, () => w.dev.counts(0).forwarded, 'irq bypass to forward the line', 5000);
      unforward(kv, w);
      let err: unknown = null;
      try {
        w.dev.setTrigger(0, null);
      } catch (e) {
        err = e;
      }
      if (err) forward(kv, w); // repair (see above)
      expect(err, 'VFIO_DEVICE_SET_IRQS trigger removal must not fail').toBeNull();
    });
  });

  it('without irqBypass (the default) nothing is ever forwarded, in either order, under traffic', async () => {
    const N = 50;
    await withRig({ vcpus: 2, wire: false, devices: [{ irqs: ['level', 'level'] }] }, async (r) => {
      const [a, b] = r.wires as [Wire, Wire];
      wireLine(r.vm, a); // trigger first
      r.vm.irqfd({ fd: b.trigger, gsi: b.gsi, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: b.resample! }); // irqfd first
      b.dev.setTrigger(b.index, b.trigger);
      b.dev.setUnmaskEventFd(b.index, b.resample);
      await go(r);
      for (const w of r.wires) w.dev.start(w.index, { kind: 'rate', count: N, periodMs: 0.05 });
      await until(r, () => r.wires.every((w) => w.dev.counts(w.index).serviced === N && w.dev.counts(w.index).unmasks >= N && irqfdOf(r.vm, w.gsi).resamples >= N), `${N} events per line`);
      for (const w of r.wires) {
        expect(pick(w.dev.counts(w.index), 'forwarded', 'hwDeactivations', 'unmasks'), describeLine(r, w)).toEqual({ forwarded: false, hwDeactivations: 0, unmasks: N });
        expect(irqfdOf(r.vm, w.gsi).resamples).toBe(N);
      }
      await stopGuests(r);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('VFIO_DEVICE_SET_IRQS / VFIO_DEVICE_GET_IRQ_INFO', () => {
  it('flag, index, start/count and eventfd validation', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level', 'edge'] }] }, async (r) => {
      const d = r.devs[0]!;
      const NONE_TRIG = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
      // Zero or two data types / actions, unknown bits.
      for (const flags of [
        0, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_ACTION_TRIGGER,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_ACTION_UNMASK,
        NONE_TRIG | (1 << 6), 1.5,
      ]) expectErrno(() => d.setIrqs(flags, 0, 0, 1), 'EINVAL');
      // Index, start, count.
      for (const index of [2, -1, 0.5]) {
        expectErrno(() => d.setIrqs(NONE_TRIG, index, 0, 1), 'EINVAL');
        expectErrno(() => d.getIrqInfo(index), 'EINVAL');
      }
      expectErrno(() => d.setIrqs(NONE_TRIG, 0, 0, 2), 'EINVAL');
      expectErrno(() => d.setIrqs(NONE_TRIG, 0, 1, 1), 'EINVAL');
      expectErrno(() => d.setIrqs(NONE_TRIG, 0, 0, -1), 'EINVAL');
      // Data arrays must match count.
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, []), 'EINVAL');
      // No payload at all for count 1: memdup_user of the data fails, EFAULT.
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1), 'EFAULT');
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, null as never), 'EFAULT');
      // A closed eventfd (or something else) with DATA_EVENTFD.
      const closed = new EventFd();
      closed.close();
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, [closed]), 'EBADF');
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1, [closed]), 'EBADF');
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, [{} as EventFd]), 'EBADF');
      // A mask eventfd is not supported by platform devices.
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK, 0, 0, 1, [new EventFd()]), 'EINVAL');
      // Nothing was raised by any of it.
      barrier(d);
      for (const i of [0, 1]) expect(pick(d.counts(i), 'raised', 'signalled', 'masked')).toEqual({ raised: 0, signalled: 0, masked: false });
    });
  });

  it('GET_IRQ_INFO: level lines are AUTOMASKED, edge lines not; both EVENTFD | MASKABLE | NORESIZE, count 1', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level', 'edge'] }] }, async (r) => {
      const d = r.devs[0]!;
      expect(d.numIrqs).toBe(2);
      const base = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE;
      expect(d.getIrqInfo(0)).toEqual({ index: 0, count: 1, flags: base | VFIO_IRQ_INFO_AUTOMASKED });
      expect(d.getIrqInfo(1)).toEqual({ index: 1, count: 1, flags: base });
    });
  });

  it('TRIGGER loopback (DATA_NONE / DATA_BOOL), trigger removal, MASK/UNMASK and the unmask eventfd (virqfd)', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level', 'edge'] }] }, async (r) => {
      const d = r.devs[0]!;
      const lvl = new EventFd();
      const edg = new EventFd();
      const unmask = new EventFd();
      d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, [lvl]);
      d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1, [edg]);
      // Edge: DATA_NONE count 1 raises one event, signalled on the trigger and serviced at once.
      d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1);
      await until(r, () => edg.value === 1n, 'the edge loopback to signal its trigger', 5000);
      expect(pick(d.counts(1), 'raised', 'signalled', 'serviced')).toEqual({ raised: 1, signalled: 1, serviced: 1 });
      // DATA_BOOL false: nothing; true: one more.
      d.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1, [false]);
      barrier(d);
      expect(d.counts(1).raised).toBe(1);
      d.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1, [true]);
      await until(r, () => edg.value === 2n, 'the DATA_BOOL loopback to signal', 5000);
      // DATA_NONE count 0 tears the trigger down: an event is raised but nothing is signalled.
      d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 0);
      d.raise(1, 1);
      barrier(d);
      expect(pick(d.counts(1), 'raised', 'signalled')).toEqual({ raised: 3, signalled: 2 });
      expect(edg.value).toBe(2n);
      // DATA_EVENTFD [null] ("fd -1") also disables; re-setting the trigger delivers the outstanding one.
      d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1, [null]);
      d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 1, [edg]);
      await until(r, () => edg.value === 3n, 'the outstanding edge to be delivered to the new trigger', 5000);

      // Level: one loopback event automasks the line; a second waits.
      d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1);
      await until(r, () => lvl.value === 1n && d.counts(0).masked, 'the level loopback to signal and automask', 5000);
      d.raise(0, 1);
      barrier(d);
      expect(pick(d.counts(0), 'raised', 'signalled', 'serviced', 'masked')).toEqual({ raised: 2, signalled: 1, serviced: 0, masked: true });
      // ACTION_UNMASK (DATA_NONE) completes it; the second one is delivered and automasks again.
      d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1);
      await until(r, () => lvl.value === 2n && d.counts(0).masked, 'the second level event after UNMASK', 5000);
      expect(pick(d.counts(0), 'signalled', 'serviced', 'unmasks')).toEqual({ signalled: 2, serviced: 1, unmasks: 1 });
      // The unmask eventfd (DATA_EVENTFD | UNMASK): signalling it unmasks, as virqfd does.
      d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1, [unmask]);
      unmask.signal(1n);
      await until(r, () => d.counts(0).serviced === 2 && !d.counts(0).masked, 'the unmask eventfd to complete the second event', 5000);
      expect(unmask.value).toBe(0n); // consumed
      expect(d.counts(0).unmasks).toBe(2);
      // A user MASK holds deliveries back; UNMASK releases them. DATA_BOOL [true] masks too.
      d.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK, 0, 0, 1, [true]);
      expect(d.counts(0).masked).toBe(true);
      d.raise(0, 1);
      barrier(d);
      expect(pick(d.counts(0), 'raised', 'signalled')).toEqual({ raised: 3, signalled: 2 });
      // An unmask eventfd signal clears only the automask, not a user mask.
      unmask.signal(1n);
      barrier(d);
      expect(pick(d.counts(0), 'signalled', 'masked')).toEqual({ signalled: 2, masked: true });
      d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1);
      await until(r, () => d.counts(0).signalled === 3, 'the held-back level event to be delivered after UNMASK', 5000);
      expect(lvl.value).toBe(3n);
      // An unmask eventfd already bound to something else (an irqfd) is EBUSY.
      const bound = new EventFd();
      r.vm.irqfd({ fd: bound, gsi: 20 });
      expectErrno(() => d.setUnmaskEventFd(0, bound), 'EBUSY');
    });
  });

  it('after close(): every call is EBADF, and the physical lines and thread slot are freed', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level', 'edge'] }] }, async (r) => {
      const d = r.devs[0]!;
      const p0 = d.pintid(0);
      const p1 = d.pintid(1);
      await d.close();
      await d.close(); // idempotent
      const efd = new EventFd();
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1), 'EBADF');
      expectErrno(() => d.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, [efd]), 'EBADF');
      expectErrno(() => d.setTrigger(0, efd), 'EBADF');
      expectErrno(() => d.setUnmaskEventFd(0, efd), 'EBADF');
      expectErrno(() => d.raise(0, 1), 'EBADF');
      expectErrno(() => d.start(0, { kind: 'rate', count: 1, periodMs: 0 }), 'EBADF');
      // The lines are free: a new device gets them (the first free lines).
      const e = new VfioPlatformDevice(r.vm, { irqs: ['edge', 'level'] });
      expect([e.pintid(0), e.pintid(1)]).toEqual([p0, p1]);
      expect(pick(e.counts(0), 'raised', 'signalled', 'serviced', 'masked', 'active', 'forwarded')).toEqual({ raised: 0, signalled: 0, serviced: 0, masked: false, active: false, forwarded: false });
      expect(e.getIrqInfo(1).flags & VFIO_IRQ_INFO_AUTOMASKED).toBe(VFIO_IRQ_INFO_AUTOMASKED);
      expect(e.getIrqInfo(0).flags & VFIO_IRQ_INFO_AUTOMASKED).toBe(0);
      // All 32 physical lines: ENOSPC beyond, and a close makes room again.
      const big = new VfioPlatformDevice(r.vm, { irqs: new Array<VfioIrqType>(30).fill('edge') });
      expectErrno(() => new VfioPlatformDevice(r.vm, { irqs: ['edge'] }), 'ENOSPC');
      await big.close();
      const again = new VfioPlatformDevice(r.vm, { irqs: new Array<VfioIrqType>(30).fill('level') });
      expect(again.numIrqs).toBe(30);
    });
  });

  it('setUnmaskEventFd on a closed device fails with EBADF and leaves the eventfd unbound (an irqfd can take it)', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const d = r.devs[0]!;
      await d.close();
      const efd = new EventFd();
      expectErrno(() => d.setUnmaskEventFd(0, efd), 'EBADF');
      expect(efd.wakeBinding(), 'a failed VFIO_DEVICE_SET_IRQS must not keep a wake-up binding on the eventfd').toBeNull();
      r.vm.irqfd({ fd: efd, gsi: 21 }); // EBUSY: the eventfd is still bound to the closed device's virqfd
    });
  });

  it('after close(), VFIO_DEVICE_GET_IRQ_INFO fails with EBADF', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const d = r.devs[0]!;
      await d.close();
      expectErrno(() => d.getIrqInfo(0), 'EBADF');
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('closing a device with a forwarded line', () => {
  it('close() unforwards its lines: the SPI is free for another line', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const a = r.devs[0]!;
      const aPintid = a.pintid(0);
      forward(kv, { dev: a, index: 0, gsi: GSI_BASE });
      await a.close();
      const b = new VfioPlatformDevice(r.vm, { irqs: ['level'] }); // reuses a's freed line
      const c = new VfioPlatformDevice(r.vm, { irqs: ['level'] });
      expect(b.pintid(0)).toBe(aPintid);
      expect(b.counts(0).forwarded).toBe(false);
      // Nothing is forwarded to gsi 8 any more, so c can take it...
      forward(kv, { dev: c, index: 0, gsi: GSI_BASE }); // ...but: EBUSY "SPI 40 is already mapped to pINTID 64"
      expect(c.counts(0).forwarded).toBe(true);
    });
  });

  it('the KVM VFIO device refuses a closed device (EBADF), so it cannot touch the new owner of the line', async () => {
    await withRig({ vcpus: 1, wire: false, devices: [{ irqs: ['level'] }] }, async (r) => {
      const kv = r.vm.createDevice(KVM_DEV_TYPE_VFIO);
      const a = r.devs[0]!;
      await a.close();
      const b = new VfioPlatformDevice(r.vm, { irqs: ['level'] });
      forward(kv, { dev: b, index: 0, gsi: GSI_BASE + 1 });
      let err: unknown = null;
      try {
        unforward(kv, { dev: a, index: 0, gsi: GSI_BASE + 1 }); // a is closed: must be EBADF
      } catch (e) {
        err = e;
      }
      expect(b.counts(0).forwarded, "b's forwarding must survive an ioctl on a's stale handle").toBe(true);
      expect((err as KvmError | null)?.code).toBe('EBADF');
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('teardown', () => {
  it('destroy() with devices still raising: irqfds, vcpus, vgic, then the devices; every thread is gone', async () => {
    const r = makeRig({ vcpus: 2, devices: [{ irqs: ['level', 'edge'], name: 'nic0' }, { irqs: ['level'], name: 'disk0' }] });
    try {
      const run = await go(r);
      for (const w of r.wires) w.dev.start(w.index, { kind: 'rate', count: 1_000_000, periodMs: 0.02 });
      await until(r, () => r.wires.every((w) => w.dev.counts(w.index).serviced >= 50 && acks(r.vm, w.spi) >= 20), 'traffic on every line', 15_000);
      const t0 = performance.now();
      await within(r.vm.destroy(), 10_000, 'vm.destroy() with devices raising');
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect(r.vm.teardownLog).toEqual(['irqfds', 'vcpus', 'vgic', 'nic0', 'disk0']);
      const res = await within(run.promise, 2000, 'the runs to settle after destroy');
      expect(res.map((x) => x.reason)).toEqual(['stopped', 'stopped']);
      await within(Promise.all(r.vm.vcpus.map((v) => v.gone)), 2000, 'every vCPU thread to exit');
      for (const d of r.devs) {
        expect((d as unknown as { worker: Worker }).worker.threadId, `${d.name}'s thread`).toBe(-1);
        expectErrno(() => d.raise(0, 1), 'EBADF');
        expect(d.failure).toBeNull();
      }
      // Nothing moves any more.
      const before = r.wires.map((w) => w.dev.counts(w.index));
      expect(r.wires.map((w) => w.dev.counts(w.index))).toEqual(before);
    } finally {
      await within(r.vm.destroy(), 10_000, 'vm.destroy() (idempotent)');
    }
  });
});
