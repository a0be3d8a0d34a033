/**
 * Interrupt injection and delivery with real vCPU threads (spec §3 injection, §4 run loop, §5 CPU
 * interface). Every expected value follows from the spec: edge coalescing (§3.3/§3.4), level
 * re-sampling after EOI (§3.4, §4.6), acknowledgement by priority (§5.1), PMR masking (§5.1),
 * active interrupts not presented again until deactivated (§4.4, §5.2), routing and migration at
 * prune (§3.8, §4.7), GICv2 SGI sources (§5.4), GICv3 SGI affinity routing (§5.5), LR overflow (§4.3).
 *
 * Guests are inline functions (they capture nothing; data goes through `args` and guest RAM).
 * RAM words: READY 0, GO 1, STOP 2, PHASE 3, CMD 4, CMD_ACK 5; ACKS + 1024 * vcpu + intid.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { guestFromFunction, type GuestCpu } from '../../src/index.js';
import { VmTracker, build, pulseSpi, spiLine, startRun, waitRam, within, USER_MMIO_GPA } from '../helpers.js';

const READY = 0;
const GO = 1;
const STOP = 2;
const PHASE = 3;
const CMD = 4;
const CMD_ACK = 5;
const ACKS = 4096;
const ackIdx = (vcpu: number, intid: number): number => ACKS + 1024 * vcpu + intid;

const WAIT_MS = 10_000;
const RUN_MS = 20_000;

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

interface SpiCfg {
  id: number;
  prio: number;
  target: number;
  edge: boolean;
}

/**
 * A one-vCPU guest that configures `spis`, signals READY with IRQs masked, waits for GO, then
 * acknowledges by polling IAR (EOI after each) until `expect` acknowledgements or 3 s, then forces
 * exits (a KVM_EXIT_MMIO re-enters with a fresh flush) and polls again to catch any extra delivery.
 * Returns the acknowledged INTIDs in order and the number of extra acknowledgements.
 */
const pollingGuest = guestFromFunction(
  (cpu: GuestCpu, args: { spis: SpiCfg[]; expect: number; userGpa: number }) => {
    cpu.initCpuInterface();
    for (const s of args.spis) {
      cpu.driver.setEdge(s.id, s.edge);
      cpu.driver.setPriority(s.id, s.prio);
      cpu.driver.route(s.id, s.target);
      cpu.driver.enable(s.id);
    }
    cpu.driver.enableDistributor();
    cpu.store(0, 1); // READY
    while (cpu.load(1) === 0) cpu.relax(); // GO
    const acks: number[] = [];
    const end = performance.now() + 3000;
    while (acks.length < args.expect && performance.now() < end) {
      const id = cpu.iar();
      if (id === 1023) {
        cpu.relax();
        continue;
      }
      acks.push(id);
      cpu.eoi(id);
    }
    let extra = 0;
    for (let round = 0; round < 4; round++) {
      cpu.mmioRead(args.userGpa);
      for (let k = 0; k < 8; k++) {
        const id = cpu.iar();
        if (id !== 1023) {
          extra++;
          cpu.eoi(id);
        }
      }
    }
    return { acks, extra };
  },
);

describe.each([3, 2] as const)('GICv%i', (model) => {
  it('edge coalescing: three edges while the guest has IRQs masked are taken exactly once', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.driver.setEdge(args.spi, true);
      cpu.driver.setPriority(args.spi, 0xa0);
      cpu.driver.route(args.spi, 0);
      cpu.driver.enable(args.spi);
      cpu.driver.enableDistributor();
      let taken = 0;
      let spurious = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) {
          spurious++;
          return;
        }
        if (id === args.spi) taken++;
        c.eoi(id);
      });
      cpu.store(0, 1);
      while (cpu.load(1) === 0) cpu.relax();
      cpu.enableIrqs();
      // Give a wrongly duplicated instance every chance to show up: several full exits/entries.
      for (let i = 0; i < 6; i++) {
        cpu.mmioRead(args.userGpa);
        cpu.relax();
      }
      cpu.disableIrqs();
      return { taken, spurious };
    });
    const spi = 45;
    const { vm } = tracker.track(build(model, { vcpus: 1, guest, args: { spi, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to configure the SPI and mask IRQs', run);
    for (let i = 0; i < 3; i++) pulseSpi(vm, spi);
    Atomics.store(vm.ram, GO, 1);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual({ taken: 1, spurious: 0 });
  });

  it('level SPI: re-fires after each EOI while the line stays high; once lowered, no more', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; fires: number; userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.driver.setEdge(args.spi, false);
      cpu.driver.setPriority(args.spi, 0xa0);
      cpu.driver.route(args.spi, 0);
      cpu.driver.enable(args.spi);
      cpu.driver.enableDistributor();
      let taken = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        if (id === args.spi) {
          taken++;
          if (taken === args.fires) {
            // Ask the VMM to lower the line, and wait (still active, IRQs masked) until it did.
            c.store(3, 1);
            while (c.load(4) === 0) c.relax();
          }
        }
        c.eoi(id);
      });
      cpu.store(0, 1);
      cpu.enableIrqs();
      while (cpu.load(4) === 0) cpu.relax();
      for (let i = 0; i < 6; i++) {
        cpu.mmioRead(args.userGpa);
        cpu.relax();
      }
      return { taken };
    });
    const spi = 50;
    const fires = 3;
    const { vm } = tracker.track(build(model, { vcpus: 1, guest, args: { spi, fires, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    vm.irqLine(spiLine(spi), 1);
    await waitRam(vm, PHASE, WAIT_MS, `the level SPI to have been taken ${fires} times`, run);
    vm.irqLine(spiLine(spi), 0);
    Atomics.store(vm.ram, 4, 1); // lowered
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual({ taken: fires });
  });

  it('acknowledgement order follows priority (lowest value first), whatever the injection order', async () => {
    // Priority values are multiples of 8 (5 implemented bits, §1.1 VGIC_PRI_BITS).
    const spis: SpiCfg[] = [
      { id: 40, prio: 0x80, target: 0, edge: true },
      { id: 41, prio: 0x20, target: 0, edge: true },
      { id: 42, prio: 0x60, target: 0, edge: true },
      { id: 43, prio: 0x40, target: 0, edge: true },
    ];
    const { vm } = tracker.track(build(model, { vcpus: 1, guest: pollingGuest, args: { spis, expect: 4, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    for (const s of spis) pulseSpi(vm, s.id);
    Atomics.store(vm.ram, GO, 1);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    const expected = [...spis].sort((a, b) => a.prio - b.prio).map((s) => s.id);
    expect(r!.result).toEqual({ acks: expected, extra: 0 });
  });

  it('LR overflow (nrLr 1): four pending SPIs are all delivered, in priority order, once each', async () => {
    const spis: SpiCfg[] = [
      { id: 60, prio: 0x70, target: 0, edge: true },
      { id: 61, prio: 0x10, target: 0, edge: true },
      { id: 62, prio: 0x50, target: 0, edge: true },
      { id: 63, prio: 0x30, target: 0, edge: true },
    ];
    const { vm } = tracker.track(
      build(model, { vcpus: 1, vm: { nrLr: 1 }, guest: pollingGuest, args: { spis, expect: 4, userGpa: USER_MMIO_GPA } }),
    );
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    for (const s of spis) pulseSpi(vm, s.id);
    Atomics.store(vm.ram, GO, 1);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    const expected = [...spis].sort((a, b) => a.prio - b.prio).map((s) => s.id);
    expect(r!.result).toEqual({ acks: expected, extra: 0 });
  });

  it('LR overflow with IRQs unmasked (nrLr 2, 6 SPIs): every one is taken exactly once', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spis: number[]; userGpa: number }) => {
      cpu.initCpuInterface();
      for (const s of args.spis) {
        cpu.driver.setPriority(s, 0x80);
        cpu.driver.route(s, 0);
        cpu.driver.enable(s);
      }
      cpu.driver.enableDistributor();
      const seen: number[] = [];
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        seen.push(id);
        c.eoi(id);
      });
      cpu.store(0, 1);
      while (cpu.load(1) === 0) cpu.relax();
      cpu.enableIrqs();
      const end = performance.now() + 3000;
      while (seen.length < args.spis.length && performance.now() < end) cpu.relax();
      for (let i = 0; i < 4; i++) cpu.mmioRead(args.userGpa);
      return seen.sort((a, b) => a - b);
    });
    const spis = [70, 71, 72, 73, 74, 75];
    const { vm } = tracker.track(build(model, { vcpus: 1, vm: { nrLr: 2 }, guest, args: { spis, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    for (const s of spis) pulseSpi(vm, s);
    Atomics.store(vm.ram, GO, 1);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual(spis);
  });

  it('PMR masking: priority >= PMR is not taken (IAR spurious, HPPIR still names it); raising PMR above it delivers', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.driver.setPriority(args.spi, 0x80);
      cpu.driver.route(args.spi, 0);
      cpu.driver.enable(args.spi);
      cpu.driver.enableDistributor();
      let handled = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        handled++;
        c.eoi(id);
      });
      cpu.pmr = 0x80; // equal to the priority: masked (priority must be strictly lower than PMR)
      cpu.store(0, 1);
      while (cpu.load(1) === 0) cpu.relax();
      cpu.enableIrqs();
      for (let i = 0; i < 4; i++) cpu.mmioRead(args.userGpa);
      const handledMasked = handled;
      cpu.disableIrqs();
      const iarMasked = cpu.iar();
      const hppirMasked = cpu.hppir();
      cpu.pmr = 0x40; // lower still: masked
      for (let i = 0; i < 2; i++) cpu.mmioRead(args.userGpa);
      const iarLower = cpu.iar();
      cpu.pmr = 0x88; // above the priority: deliverable
      cpu.enableIrqs();
      const end = performance.now() + 3000;
      while (handled === handledMasked && performance.now() < end) cpu.relax();
      return { handledMasked, iarMasked, hppirMasked, iarLower, handled };
    });
    const spi = 52;
    const { vm } = tracker.track(build(model, { vcpus: 1, guest, args: { spi, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    pulseSpi(vm, spi);
    Atomics.store(vm.ram, GO, 1);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual({ handledMasked: 0, iarMasked: 1023, hppirMasked: spi, iarLower: 1023, handled: 1 });
  });

  it('EOImode=1: an active interrupt is not presented again until DIR; EOIR drops the running priority (RPR)', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.setEoiMode(true);
      cpu.driver.setPriority(args.spi, 0x80);
      cpu.driver.route(args.spi, 0);
      cpu.driver.enable(args.spi);
      cpu.driver.enableDistributor();
      const waitPhase = (p: number): void => {
        while (cpu.load(1) < p) cpu.relax();
      };
      const pollIar = (): number => {
        const end = performance.now() + 3000;
        for (;;) {
          const id = cpu.iar();
          if (id !== 1023 || performance.now() > end) return id;
          cpu.relax();
        }
      };
      cpu.store(0, 1);
      waitPhase(1); // first edge injected
      const rprIdle = cpu.rpr();
      const first = pollIar();
      const rprActive = cpu.rpr();
      cpu.eoi(first); // priority drop only
      const rprAfterEoi = cpu.rpr();
      cpu.store(3, 1); // tell the VMM: acknowledged, EOI'd, still active
      waitPhase(2); // second edge injected while active
      const reAcks: number[] = [];
      for (let i = 0; i < 4; i++) {
        cpu.mmioRead(args.userGpa);
        const id = cpu.iar();
        if (id !== 1023) reAcks.push(id);
      }
      cpu.dir(first); // deactivate: the new edge can now be presented
      const second = pollIar();
      cpu.eoi(second);
      cpu.dir(second);
      let extra = 0;
      for (let i = 0; i < 3; i++) {
        cpu.mmioRead(args.userGpa);
        if (cpu.iar() !== 1023) extra++;
      }
      return { first, rprIdle, rprActive, rprAfterEoi, reAcks, second, extra, rprEnd: cpu.rpr() };
    });
    const spi = 55;
    const { vm } = tracker.track(build(model, { vcpus: 1, guest, args: { spi, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready', run);
    pulseSpi(vm, spi);
    Atomics.store(vm.ram, GO, 1);
    await waitRam(vm, PHASE, WAIT_MS, 'the guest to acknowledge and EOI (no DIR)', run);
    pulseSpi(vm, spi);
    Atomics.store(vm.ram, GO, 2);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual({
      first: spi,
      rprIdle: 0xff,
      rprActive: 0x80,
      rprAfterEoi: 0xff,
      reAcks: [],
      second: spi,
      extra: 0,
      rprEnd: 0xff,
    });
  });

  it('SPI routing: delivered only to its target; re-routed while pending, it migrates at the holder\'s next exit', async () => {
    // vCPU 0 configures; both vCPUs count acknowledgements per INTID. Commands (CMD word):
    // 1 = vCPU 0 routes the SPI to vCPU 0; 2 = vCPU 1 masks IRQs; 3 = vCPU 1 forces an exit;
    // 4 = vCPU 1 unmasks. CMD_ACK echoes the command once done.
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; userGpa: number }) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) {
        cpu.driver.setPriority(args.spi, 0x80);
        cpu.driver.route(args.spi, 1);
        cpu.driver.enable(args.spi);
        cpu.driver.enableDistributor();
      }
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        c.add(4096 + 1024 * c.id + id, 1);
        c.eoi(id);
      });
      cpu.enableIrqs();
      cpu.add(0, 1);
      let done = 0;
      while (cpu.load(2) === 0) {
        const cmd = cpu.load(4);
        if (cmd !== done) {
          if (cmd === 1 && cpu.id === 0) {
            cpu.driver.route(args.spi, 0);
            cpu.store(5, 1);
          }
          if (cmd === 2 && cpu.id === 1) {
            cpu.disableIrqs();
            cpu.store(5, 2);
          }
          if (cmd === 3 && cpu.id === 1) {
            cpu.mmioRead(args.userGpa);
            cpu.store(5, 3);
          }
          if (cmd === 4 && cpu.id === 1) {
            cpu.enableIrqs();
            cpu.store(5, 4);
          }
          done = cmd;
        }
        cpu.relax();
      }
      cpu.enableIrqs();
      for (let i = 0; i < 3; i++) cpu.mmioRead(args.userGpa);
      return cpu.id;
    });
    const spi = 48;
    const { vm } = tracker.track(build(model, { vcpus: 2, guest, args: { spi, userGpa: USER_MMIO_GPA } }));
    const ram = vm.ram;
    const run = startRun(vm);
    const cmd = async (n: number, what: string): Promise<void> => {
      Atomics.store(ram, CMD, n);
      await waitRam(vm, CMD_ACK, WAIT_MS, what, run, (v) => v === n);
    };
    await waitRam(vm, READY, WAIT_MS, 'both vCPUs to be ready', run, (v) => v === 2);
    // Phase 1: routed to vCPU 1.
    for (let i = 1; i <= 5; i++) {
      pulseSpi(vm, spi);
      await waitRam(vm, ackIdx(1, spi), WAIT_MS, `acknowledgement #${i} on vCPU 1`, run, (v) => v === i);
    }
    expect(Atomics.load(ram, ackIdx(0, spi))).toBe(0);
    // Phase 2: pending on vCPU 1 (masked there), then re-routed to vCPU 0.
    await cmd(2, 'vCPU 1 to mask IRQs');
    pulseSpi(vm, spi);
    await cmd(1, 'vCPU 0 to re-route the SPI to itself');
    await cmd(3, 'vCPU 1 to exit (fold + prune migrates the pending SPI)');
    await waitRam(vm, ackIdx(0, spi), WAIT_MS, 'the migrated SPI to be taken on vCPU 0', run, (v) => v === 1);
    await cmd(4, 'vCPU 1 to unmask');
    // Phase 3: new edges go to vCPU 0 only.
    for (let i = 2; i <= 4; i++) {
      pulseSpi(vm, spi);
      await waitRam(vm, ackIdx(0, spi), WAIT_MS, `acknowledgement #${i} on vCPU 0`, run, (v) => v === i);
    }
    Atomics.store(ram, STOP, 1);
    await within(run.promise, RUN_MS, 'the guests to return');
    expect(Atomics.load(ram, ackIdx(1, spi))).toBe(5);
    expect(Atomics.load(ram, ackIdx(0, spi))).toBe(4);
  });
});

describe('GICv2 SGIs (§5.4)', () => {
  it('two senders of the same SGI produce two acknowledgements, each with its source in IAR[12:10]', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { sgi: number; receiver: number; userGpa: number }) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) cpu.driver.enableDistributor();
      cpu.add(0, 1);
      while (cpu.load(0) < cpu.nrVcpus) cpu.relax();
      if (cpu.id !== args.receiver) {
        cpu.sendSgi(args.sgi, [args.receiver]);
        cpu.add(3, 1); // sent
        return null;
      }
      while (cpu.load(3) < cpu.nrVcpus - 1) cpu.relax();
      const acks: number[] = [];
      const end = performance.now() + 3000;
      while (acks.length < cpu.nrVcpus - 1 && performance.now() < end) {
        const iar = cpu.iar();
        if (iar === 1023) {
          cpu.relax();
          continue;
        }
        acks.push(iar);
        cpu.eoi(iar);
      }
      let extra = 0;
      for (let i = 0; i < 3; i++) {
        cpu.mmioRead(args.userGpa);
        const iar = cpu.iar();
        if (iar !== 1023) {
          extra++;
          cpu.eoi(iar);
        }
      }
      return { acks: acks.sort((a, b) => a - b), extra };
    });
    const sgi = 3;
    const { vm } = tracker.track(build(2, { vcpus: 3, guest, args: { sgi, receiver: 2, userGpa: USER_MMIO_GPA } }));
    const res = await within(vm.run(), RUN_MS, 'the guests to return');
    // GICC_IAR: CPUID (source) in [12:10], INTID in [9:0].
    expect(res[2]!.result).toEqual({ acks: [(0 << 10) | sgi, (1 << 10) | sgi], extra: 0 });
  });

  it('target-list filters: "self" reaches only the sender, "others" every vCPU but the sender', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { userGpa: number }) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) cpu.driver.enableDistributor();
      cpu.onIrq((c) => {
        const iar = c.iar();
        if (iar === 1023) return;
        c.add(4096 + 1024 * c.id + (iar & 0x3ff), 1);
        c.add(64 + c.id, (iar >> 10) & 7); // sum of the sources seen
        c.eoi(iar);
      });
      cpu.enableIrqs();
      cpu.add(0, 1);
      while (cpu.load(0) < cpu.nrVcpus) cpu.relax();
      if (cpu.id === 1) {
        cpu.sendSgi(7, 'self');
        cpu.sendSgi(9, 'others');
      }
      cpu.add(3, 1);
      while (cpu.load(2) === 0) cpu.relax();
      for (let i = 0; i < 3; i++) cpu.mmioRead(args.userGpa);
      return cpu.id;
    });
    const { vm } = tracker.track(build(2, { vcpus: 3, guest, args: { userGpa: USER_MMIO_GPA } }));
    const ram = vm.ram;
    const run = startRun(vm);
    await waitRam(vm, PHASE, WAIT_MS, 'vCPU 1 to send', run, (v) => v === 3);
    await waitFor3(vm, run);
    Atomics.store(ram, STOP, 1);
    await within(run.promise, RUN_MS, 'the guests to return');
    expect([0, 1, 2].map((v) => Atomics.load(ram, ackIdx(v, 7)))).toEqual([0, 1, 0]);
    expect([0, 1, 2].map((v) => Atomics.load(ram, ackIdx(v, 9)))).toEqual([1, 0, 1]);
    // The source of every SGI was vCPU 1.
    expect([0, 1, 2].map((v) => Atomics.load(ram, 64 + v))).toEqual([1, 1, 1]);
  });
});

async function waitFor3(vm: import('../../src/index.js').Vm, run: ReturnType<typeof startRun>): Promise<void> {
  const ram = vm.ram;
  await waitRam(vm, ackIdx(1, 7), WAIT_MS, 'the self-SGI on vCPU 1', run, (v) => v >= 1);
  await waitRam(vm, ackIdx(0, 9), WAIT_MS, 'the others-SGI on vCPU 0', run, (v) => v >= 1);
  await waitRam(vm, ackIdx(2, 9), WAIT_MS, 'the others-SGI on vCPU 2', run, (v) => v >= 1);
  void ram;
}

describe('GICv3 SGIs (§5.5)', () => {
  it('ICC_SGI1R target list reaches exactly the listed vCPUs; IRM=1 reaches every vCPU but the sender', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { userGpa: number }) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) cpu.driver.enableDistributor();
      cpu.onIrq((c) => {
        const iar = c.iar();
        if (iar === 1023) return;
        c.add(4096 + 1024 * c.id + iar, 1);
        c.eoi(iar);
      });
      cpu.enableIrqs();
      cpu.add(0, 1);
      while (cpu.load(0) < cpu.nrVcpus) cpu.relax();
      if (cpu.id === 0) {
        // Aff1 = 0, TargetList = {1, 3}, INTID 5 (spec §5.5 layout of ICC_SGI1R_EL1).
        cpu.sysregWrite('ICC_SGI1R_EL1', (5n << 24n) | (1n << 1n) | (1n << 3n));
        // IRM = 1 (bit 40): all but self, INTID 6.
        cpu.sysregWrite('ICC_SGI1R_EL1', (1n << 40n) | (6n << 24n));
        // A target list naming a vCPU that does not exist (Aff0 = 9) is skipped; vCPU 2 also listed.
        cpu.sysregWrite('ICC_SGI1R_EL1', (8n << 24n) | (1n << 9n) | (1n << 2n));
        cpu.store(3, 1);
      }
      while (cpu.load(2) === 0) cpu.relax();
      for (let i = 0; i < 3; i++) cpu.mmioRead(args.userGpa);
      return cpu.id;
    });
    const { vm } = tracker.track(build(3, { vcpus: 4, guest, args: { userGpa: USER_MMIO_GPA } }));
    const ram = vm.ram;
    const run = startRun(vm);
    await waitRam(vm, PHASE, WAIT_MS, 'vCPU 0 to send its SGIs', run);
    for (const v of [1, 3]) await waitRam(vm, ackIdx(v, 5), WAIT_MS, `SGI 5 on vCPU ${v}`, run);
    for (const v of [1, 2, 3]) await waitRam(vm, ackIdx(v, 6), WAIT_MS, `SGI 6 on vCPU ${v}`, run);
    await waitRam(vm, ackIdx(2, 8), WAIT_MS, 'SGI 8 on vCPU 2', run);
    Atomics.store(ram, STOP, 1);
    await within(run.promise, RUN_MS, 'the guests to return');
    const counts = (sgi: number): number[] => [0, 1, 2, 3].map((v) => Atomics.load(ram, ackIdx(v, sgi)));
    expect(counts(5)).toEqual([0, 1, 0, 1]);
    expect(counts(6)).toEqual([0, 1, 1, 1]);
    expect(counts(8)).toEqual([0, 0, 1, 0]);
  });

  it('sendSgi helper: list and "others" on a 3-vCPU VM', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { userGpa: number }) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) cpu.driver.enableDistributor();
      cpu.onIrq((c) => {
        const iar = c.iar();
        if (iar === 1023) return;
        c.add(4096 + 1024 * c.id + iar, 1);
        c.eoi(iar);
      });
      cpu.enableIrqs();
      cpu.add(0, 1);
      while (cpu.load(0) < cpu.nrVcpus) cpu.relax();
      if (cpu.id === 2) {
        cpu.sendSgi(11, [0]);
        cpu.sendSgi(12, 'others');
        cpu.sendSgi(13, 'self');
        cpu.store(3, 1);
      }
      while (cpu.load(2) === 0) cpu.relax();
      for (let i = 0; i < 3; i++) cpu.mmioRead(args.userGpa);
      return cpu.id;
    });
    const { vm } = tracker.track(build(3, { vcpus: 3, guest, args: { userGpa: USER_MMIO_GPA } }));
    const ram = vm.ram;
    const run = startRun(vm);
    await waitRam(vm, PHASE, WAIT_MS, 'vCPU 2 to send', run);
    await waitRam(vm, ackIdx(0, 11), WAIT_MS, 'SGI 11 on vCPU 0', run);
    await waitRam(vm, ackIdx(0, 12), WAIT_MS, 'SGI 12 on vCPU 0', run);
    await waitRam(vm, ackIdx(1, 12), WAIT_MS, 'SGI 12 on vCPU 1', run);
    await waitRam(vm, ackIdx(2, 13), WAIT_MS, 'SGI 13 on vCPU 2', run);
    Atomics.store(ram, STOP, 1);
    await within(run.promise, RUN_MS, 'the guests to return');
    const counts = (sgi: number): number[] => [0, 1, 2].map((v) => Atomics.load(ram, ackIdx(v, sgi)));
    expect(counts(11)).toEqual([1, 0, 0]);
    expect(counts(12)).toEqual([1, 1, 0]);
    expect(counts(13)).toEqual([0, 0, 1]);
  });
});

describe('§3.8: interrupts injected while the distributor is disabled are never queued', () => {
  it.each([3, 2] as const)('GICv%i: an edge before GICD_CTLR.Enable is not delivered after enabling', async (model) => {
    const guest = guestFromFunction((cpu: GuestCpu, args: { spi: number; userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.driver.setPriority(args.spi, 0x80);
      cpu.driver.route(args.spi, 0);
      cpu.driver.enable(args.spi);
      let taken = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        taken++;
        c.eoi(id);
      });
      cpu.enableIrqs();
      cpu.store(0, 1);
      while (cpu.load(1) === 0) cpu.relax();
      cpu.driver.enableDistributor();
      for (let i = 0; i < 4; i++) cpu.mmioRead(args.userGpa);
      const before = taken;
      cpu.store(3, 1);
      while (cpu.load(1) < 2) cpu.relax();
      const end = performance.now() + 3000;
      while (taken === before && performance.now() < end) cpu.relax();
      return { before, after: taken };
    });
    const spi = 66;
    const { vm } = tracker.track(build(model, { vcpus: 1, guest, args: { spi, userGpa: USER_MMIO_GPA } }));
    const run = startRun(vm);
    await waitRam(vm, READY, WAIT_MS, 'the guest to be ready (distributor still disabled)', run);
    pulseSpi(vm, spi);
    Atomics.store(vm.ram, GO, 1);
    await waitRam(vm, PHASE, WAIT_MS, 'the guest to enable the distributor', run);
    pulseSpi(vm, spi); // a new edge with the distributor enabled is delivered
    Atomics.store(vm.ram, GO, 2);
    const [r] = await within(run.promise, RUN_MS, 'the guest to return');
    expect(r!.result).toEqual({ before: 0, after: 1 });
  });
});
