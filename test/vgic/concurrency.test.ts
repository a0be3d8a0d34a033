/**
 * Many injectors at once, on real threads: the main thread (KVM_IRQ_LINE) and every vCPU (guest
 * GICD_ISPENDR writes, SGIs) inject while every vCPU acknowledges. 100 000 edge SPIs in total plus
 * SGIs, for both locking designs ('fine' per-IRQ/per-vCPU locks, 'global' 2014 dist lock).
 *
 * Accounting (spec §3.3/§3.4 edge semantics, §5.1 acknowledge):
 *  - credit SPIs: each has exactly one injector, which re-injects only after the previous instance
 *    was acknowledged. An acknowledged edge is no longer pending, so the next edge is a new
 *    instance: injections == acknowledgements, exactly.
 *  - free-running SPIs: injected by everybody, no waiting. Edges that arrive while the interrupt is
 *    still pending coalesce: 1 <= acknowledgements <= injections for every SPI injected at all.
 *  - SGIs: SGI i is sent only by vCPU i, with the same credit rule per target: exact counts.
 * At the end every vCPU waits (WFI) for its own doorbell SPI, then forces exits to drain, and the
 * interrupt records, ap_lists and LRs must be empty (§4.7: handled interrupts leave the ap_list at
 * the holder's next exit).
 */
import { describe, expect, it, afterEach } from 'vitest';
import { guestFromFunction, type GuestCpu, type Vm } from '../../src/index.js';
import { IRQ, LR, VCPU } from '../../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { VmTracker, buildV3, pulseSpi, startRun, waitFor, waitRam, within, USER_MMIO_GPA, type RunHandle } from '../helpers.js';

const R = { READY: 0, GO: 1, DONE: 3, INJ: 1000, ACK: 2000, FINJ: 3000, SINJ: 4000, SACK: 4200 } as const;

const NV = 4;
const TOTAL_SPIS = 100_000;
const MAIN_CREDIT = 25_000;
const MAIN_FREE = 25_000;
const VCPU_CREDIT = (TOTAL_SPIS - MAIN_CREDIT - MAIN_FREE) / NV / 2; // 6250
const VCPU_FREE = VCPU_CREDIT;
const SGI_BUDGET = 1500;
const CREDIT = Array.from({ length: 64 }, (_, i) => 32 + i); // 32..95
const FREE = Array.from({ length: 32 }, (_, i) => 96 + i); // 96..127
const DOORBELL = (v: number): number => 240 + v;
/** Credit SPI owner: even ones the main thread (-1), odd ones vCPU ((s - 33) / 2) % NV. */
const creditOwner = (s: number): number => ((s - 32) % 2 === 0 ? -1 : ((s - 33) / 2) % NV);
/**
 * Stall bound: a thread that makes no progress for this long gives up (a lost credit SPI or SGI
 * stalls its owner). A bound on progress, not on the whole run, so a loaded machine that is only
 * slow does not fail the test; TOTAL_MS is the outer bound that catches a livelock.
 */
const STALL_MS = 15_000;
const TOTAL_MS = 240_000;

interface GuestArgs {
  me?: never;
  setup: { id: number; prio: number; target: number }[];
  creditOwned: number[][];
  free: number[];
  retarget: number[];
  budgetCredit: number;
  budgetFree: number;
  sgiBudget: number;
  stallMs: number;
  userGpa: number;
}

const stressGuest = guestFromFunction((cpu: GuestCpu, a: GuestArgs) => {
  const READY = 0, GO = 1, DONE = 3, INJ = 1000, ACK = 2000, FINJ = 3000, SINJ = 4000, SACK = 4200;
  const me = cpu.id;
  const n = cpu.nrVcpus;
  cpu.initCpuInterface();
  if (me === 0) {
    for (const s of a.setup) {
      cpu.driver.setPriority(s.id, s.prio);
      cpu.driver.route(s.id, s.target);
      cpu.driver.enable(s.id);
    }
    cpu.driver.enableDistributor();
  }
  cpu.onIrq((c) => {
    const id = c.iar();
    if (id === 1023) return;
    if (id < 16) c.add(SACK + 16 * c.id + id, 1);
    else c.add(ACK + id, 1);
    c.eoi(id);
  });
  cpu.enableIrqs();
  cpu.add(READY, 1);
  while (cpu.load(GO) === 0) cpu.relax();
  const mine = a.creditOwned[me]!;
  let credit = 0;
  let free = 0;
  let sgis = 0;
  let k = 0;
  let progress = performance.now();
  let stalled = false;
  while (credit < a.budgetCredit || free < a.budgetFree || sgis < a.sgiBudget) {
    if (credit < a.budgetCredit) {
      const s = mine[k % mine.length]!;
      if (cpu.load(ACK + s) === cpu.load(INJ + s)) {
        cpu.add(INJ + s, 1);
        cpu.driver.setPending(s);
        credit++;
        progress = performance.now();
      }
    }
    if (free < a.budgetFree) {
      const s = a.free[(k * 7 + me) % a.free.length]!;
      cpu.add(FINJ + s, 1);
      cpu.driver.setPending(s);
      free++;
      progress = performance.now();
    }
    if (sgis < a.sgiBudget) {
      const t = (me + 1 + (k % (n - 1))) % n;
      if (cpu.load(SACK + 16 * t + me) === cpu.load(SINJ + 16 * t + me)) {
        cpu.add(SINJ + 16 * t + me, 1);
        cpu.sendSgi(me, [t]);
        sgis++;
        progress = performance.now();
      }
    }
    if ((k & 255) === 0 && performance.now() - progress > a.stallMs) {
      stalled = true;
      break;
    }
    if ((k & 31) === 0) {
      // Re-route an SPI while traffic flows: queued instances migrate at the holder's next prune
      // (§4.7), racing with the queueing of new ones (§3.6 re-validation).
      const r = k >> 5;
      const s = a.retarget[(r * n + me) % a.retarget.length]!;
      cpu.driver.route(s, (me + r) % n);
    }
    k++;
    cpu.relax();
  }
  const timedOut = stalled;
  cpu.add(DONE, 1);
  // Sleep until my doorbell SPI (240 + id) is taken, then drain with a few full exits.
  while (cpu.load(ACK + 240 + me) === 0) cpu.wfi();
  for (let i = 0; i < 4; i++) cpu.mmioRead(a.userGpa);
  return { credit, free, sgis, timedOut };
});

/** The main thread's share: credit SPIs it owns and free-running SPIs, via KVM_IRQ_LINE. */
async function mainInjector(vm: Vm, run: RunHandle, owned: number[]): Promise<{ credit: number; free: number }> {
  const ram = vm.ram;
  let credit = 0;
  let free = 0;
  let k = 0;
  let progress = Date.now();
  while ((credit < MAIN_CREDIT || free < MAIN_FREE) && Date.now() - progress < STALL_MS && !run.done) {
    for (let i = 0; i < 512; i++, k++) {
      if (credit < MAIN_CREDIT) {
        const s = owned[k % owned.length]!;
        if (Atomics.load(ram, R.ACK + s) === Atomics.load(ram, R.INJ + s)) {
          Atomics.add(ram, R.INJ + s, 1);
          pulseSpi(vm, s);
          credit++;
          progress = Date.now();
        }
      }
      if (free < MAIN_FREE) {
        const s = FREE[(k * 5) % FREE.length]!;
        Atomics.add(ram, R.FINJ + s, 1);
        pulseSpi(vm, s);
        free++;
        progress = Date.now();
      }
    }
    await new Promise<void>((r) => setImmediate(r)); // keep the event loop (and its timers) alive
  }
  return { credit, free };
}

function leftoverState(vm: Vm): string[] {
  const h = vm.host;
  const m = h.m;
  const bad: string[] = [];
  for (let v = 0; v < NV; v++) {
    const vb = vcpuOff(h.g, v);
    if (m[vb + VCPU.off.apHead] !== -1) bad.push(`vCPU ${v}: ap_list not empty (head record ${m[vb + VCPU.off.apHead]})`);
    for (let i = 0; i < vm.options.nrLr; i++) {
      const st = m[vb + VCPU.off.lr + i * LR.size + LR.off.state]!;
      if (st !== 0) bad.push(`vCPU ${v}: LR${i} state ${st} (INTID ${m[vb + VCPU.off.lr + i * LR.size + LR.off.intid]})`);
    }
    for (let r = v * 32; r < v * 32 + 16; r++) {
      const b = irqOff(h.g, r);
      if (m[b + IRQ.off.pendingLatch] || m[b + IRQ.off.active] || m[b + IRQ.off.vcpu] !== -1) bad.push(`vCPU ${v} SGI ${r - v * 32} still pending/active/queued`);
    }
  }
  for (const s of [...CREDIT, ...FREE, ...Array.from({ length: NV }, (_, v) => DOORBELL(v))]) {
    const b = irqOff(h.g, h.g.spiRecordBase + s - 32);
    if (m[b + IRQ.off.pendingLatch] || m[b + IRQ.off.active] || m[b + IRQ.off.vcpu] !== -1) {
      bad.push(`SPI ${s}: latch ${m[b + IRQ.off.pendingLatch]} active ${m[b + IRQ.off.active]} on ap_list of ${m[b + IRQ.off.vcpu]}`);
    }
  }
  return bad;
}

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

describe.each(['fine', 'global'] as const)("locking '%s'", (locking) => {
  it(`${TOTAL_SPIS} edge SPIs from the main thread and ${NV} vCPUs at once, plus SGIs: every count adds up`, { timeout: TOTAL_MS + 60_000 }, async () => {
    const setup = [...CREDIT, ...FREE].map((s, i) => ({ id: s, prio: 0x20 + 8 * (i % 12), target: i % NV }));
    for (let v = 0; v < NV; v++) setup.push({ id: DOORBELL(v), prio: 0xe0, target: v });
    const creditOwned = Array.from({ length: NV }, (_, v) => CREDIT.filter((s) => creditOwner(s) === v));
    const args: GuestArgs = {
      setup,
      creditOwned,
      free: FREE,
      retarget: [...CREDIT, ...FREE],
      budgetCredit: VCPU_CREDIT,
      budgetFree: VCPU_FREE,
      sgiBudget: SGI_BUDGET,
      stallMs: STALL_MS,
      userGpa: USER_MMIO_GPA,
    };
    const { vm } = tracker.track(buildV3({ vcpus: NV, guest: stressGuest, args, vm: { locking } }));
    const ram = vm.ram;
    const run = startRun(vm);
    await waitRam(vm, R.READY, 10_000, 'every vCPU to be ready', run, (v) => v === NV);
    Atomics.store(ram, R.GO, 1);
    const main = await mainInjector(vm, run, CREDIT.filter((s) => creditOwner(s) === -1));
    expect(main, 'the main thread must finish its budget (a lost credit SPI stalls it)').toEqual({ credit: MAIN_CREDIT, free: MAIN_FREE });
    await waitRam(vm, R.DONE, TOTAL_MS, 'every vCPU to finish injecting (each stops by itself after a stall)', run, (v) => v === NV);
    // Settle: every credit SPI and every SGI acknowledged as often as injected.
    const unsettled = (): string[] => {
      const out: string[] = [];
      for (const s of CREDIT) {
        const inj = Atomics.load(ram, R.INJ + s);
        const ack = Atomics.load(ram, R.ACK + s);
        if (inj !== ack) out.push(`SPI ${s}: ${inj} injected, ${ack} acknowledged`);
      }
      for (let t = 0; t < NV; t++)
        for (let sgi = 0; sgi < NV; sgi++) {
          const inj = Atomics.load(ram, R.SINJ + 16 * t + sgi);
          const ack = Atomics.load(ram, R.SACK + 16 * t + sgi);
          if (inj !== ack) out.push(`SGI ${sgi} -> vCPU ${t}: ${inj} sent, ${ack} acknowledged`);
        }
      return out;
    };
    try {
      await waitFor(() => unsettled().length === 0, 10_000, 'every credit SPI and SGI to be acknowledged', run);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${unsettled().slice(0, 20).join('\n')}`);
    }
    // Doorbells end the guests (they sleep in WFI until theirs arrives).
    for (let v = 0; v < NV; v++) pulseSpi(vm, DOORBELL(v));
    let res;
    try {
      res = await within(run.promise, 15_000, 'every guest to take its doorbell and return');
    } catch (e) {
      const diag = vm.vcpus.map((v) => {
        const st = v.stats();
        return `vCPU ${v.id}: doorbell acks ${Atomics.load(ram, R.ACK + DOORBELL(v.id))}, wfi ${st.wfi} parked ${st.wfiParked} entries ${st.entries} acks ${st.acks}`;
      });
      throw new Error(`${(e as Error).message}\n${diag.join('\n')}\n${leftoverState(vm).join('\n')}`);
    }

    // Every vCPU finished its budget without stalling.
    for (const r of res) {
      expect(r.result, `vCPU ${r.vcpu}`).toEqual({ credit: VCPU_CREDIT, free: VCPU_FREE, sgis: SGI_BUDGET, timedOut: false });
    }
    // Credit SPIs: exact.
    let creditInj = 0;
    for (const s of CREDIT) {
      const inj = Atomics.load(ram, R.INJ + s);
      expect(Atomics.load(ram, R.ACK + s), `credit SPI ${s}`).toBe(inj);
      creditInj += inj;
    }
    expect(creditInj).toBe(MAIN_CREDIT + NV * VCPU_CREDIT);
    // Free-running SPIs: coalescing allowed, losing or duplicating is not.
    let freeInj = 0;
    for (const s of FREE) {
      const inj = Atomics.load(ram, R.FINJ + s);
      const ack = Atomics.load(ram, R.ACK + s);
      freeInj += inj;
      if (inj > 0) expect(ack, `free SPI ${s} (${inj} injections)`).toBeGreaterThanOrEqual(1);
      expect(ack, `free SPI ${s}`).toBeLessThanOrEqual(inj);
    }
    expect(freeInj).toBe(MAIN_FREE + NV * VCPU_FREE);
    expect(creditInj + freeInj).toBe(TOTAL_SPIS);
    // SGIs: exact; no vCPU sends to itself.
    for (let t = 0; t < NV; t++) {
      expect(Atomics.load(ram, R.SACK + 16 * t + t), `SGI ${t} on its own sender`).toBe(0);
      for (let sgi = 0; sgi < NV; sgi++) expect(Atomics.load(ram, R.SACK + 16 * t + sgi)).toBe(Atomics.load(ram, R.SINJ + 16 * t + sgi));
    }
    // Doorbells: exactly once each.
    for (let v = 0; v < NV; v++) expect(Atomics.load(ram, R.ACK + DOORBELL(v)), `doorbell of vCPU ${v}`).toBe(1);
    // Nothing else was acknowledged anywhere.
    let ramAcks = 0;
    for (let id = 16; id < 256; id++) ramAcks += Atomics.load(ram, R.ACK + id);
    for (let t = 0; t < NV; t++) for (let sgi = 0; sgi < 16; sgi++) ramAcks += Atomics.load(ram, R.SACK + 16 * t + sgi);
    // vCPU statistics agree with the guests' own counts: one EOI per acknowledgement.
    const stats = vm.vcpus.map((v) => v.stats());
    for (const [v, s] of stats.entries()) expect(s.eois, `vCPU ${v}: EOIs == acknowledgements`).toBe(s.acks);
    expect(stats.reduce((a, s) => a + s.acks, 0)).toBe(ramAcks);
    // Every vCPU did take interrupts and SGIs.
    for (let t = 0; t < NV; t++) {
      let got = 0;
      for (let sgi = 0; sgi < NV; sgi++) got += Atomics.load(ram, R.SACK + 16 * t + sgi);
      expect(got, `SGIs received by vCPU ${t}`).toBeGreaterThan(0);
    }
    // No LR, ap_list or record state left behind.
    expect(leftoverState(vm)).toEqual([]);
  });
});

/**
 * Kick and wake-up races (spec §3.7 Dekker pair, §4.9 WFI re-check): the main thread injects credit
 * SPIs to vCPUs that either spin without ever exiting (only a kick makes them see a new interrupt)
 * or sleep in WFI between interrupts (only a wake-up does). A lost kick or wake-up stalls a credit
 * SPI forever, which the bounded wait reports.
 */
const waiterGuest = guestFromFunction((cpu: GuestCpu, a: { spis: number[][]; wfi: boolean[] }) => {
  const READY = 0, GO = 1, STOP = 2, ACK = 2000;
  cpu.initCpuInterface();
  if (cpu.id === 0) {
    for (const [v, list] of a.spis.entries())
      for (const s of list) {
        cpu.driver.setPriority(s, 0x80);
        cpu.driver.route(s, v);
        cpu.driver.enable(s);
      }
    cpu.driver.enableDistributor();
  }
  cpu.onIrq((c) => {
    const id = c.iar();
    if (id === 1023) return;
    c.add(ACK + id, 1);
    c.eoi(id);
  });
  cpu.enableIrqs();
  cpu.add(READY, 1);
  while (cpu.load(GO) === 0) cpu.relax();
  const useWfi = a.wfi[cpu.id]!;
  const wake = ACK + a.spis[cpu.id]![0]!;
  // Leave only after STOP and (sleepers) after the wake-up SPI the VMM sends with it: RAM[10 + id]
  // holds the acknowledgement count that SPI must reach.
  while (cpu.load(STOP) === 0 || (useWfi && cpu.load(wake) < cpu.load(10 + cpu.id))) {
    if (useWfi) cpu.wfi();
    else cpu.relax();
  }
  return cpu.id;
});

describe('kick and wake-up races', () => {
  it.each(['fine', 'global'] as const)("locking '%s': interrupts reach vCPUs spinning in the guest and vCPUs sleeping in WFI", { timeout: TOTAL_MS + 60_000 }, async (locking) => {
    // One SPI per vCPU: strict ping-pong, so a single lost kick or wake-up stalls it (nothing else
    // would come along to rescue it).
    const spis = Array.from({ length: NV }, (_, v) => [32 + 4 * v]);
    const wfi = [false, true, false, true];
    const { vm } = tracker.track(buildV3({ vcpus: NV, guest: waiterGuest, args: { spis, wfi }, vm: { locking } }));
    const ram = vm.ram;
    const run = startRun(vm);
    await waitRam(vm, R.READY, 10_000, 'every vCPU to be ready', run, (v) => v === NV);
    Atomics.store(ram, R.GO, 1);
    const all = spis.flat();
    const inj = new Map(all.map((s) => [s, 0]));
    const ROUNDS = 40_000;
    let sent = 0;
    let lastProgress = Date.now();
    let lastAcked = 0;
    while (sent < ROUNDS) {
      for (const s of all) {
        if (sent >= ROUNDS) break;
        if (Atomics.load(ram, R.ACK + s) === inj.get(s)) {
          inj.set(s, inj.get(s)! + 1);
          pulseSpi(vm, s);
          sent++;
        }
      }
      const acked = all.reduce((a, s) => a + Atomics.load(ram, R.ACK + s), 0);
      if (acked !== lastAcked) {
        lastAcked = acked;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > 5000) {
        const stuck = all.filter((s) => Atomics.load(ram, R.ACK + s) !== inj.get(s)).map((s) => `SPI ${s} (vCPU ${Math.floor((s - 32) / 4)}, ${wfi[Math.floor((s - 32) / 4)] ? 'WFI' : 'spinning'})`);
        throw new Error(`no acknowledgement for 5 s after ${sent} injections: lost kick or wake-up? stuck: ${stuck.join(', ')}`);
      }
      if (run.error) throw run.error;
      await new Promise<void>((r) => setImmediate(r));
    }
    await waitFor(() => all.every((s) => Atomics.load(ram, R.ACK + s) === inj.get(s)), 10_000, 'the last injections to be acknowledged', run);
    for (let v = 0; v < NV; v++) {
      if (!wfi[v]) continue;
      const s = spis[v]![0]!;
      inj.set(s, inj.get(s)! + 1);
      Atomics.store(ram, 10 + v, inj.get(s)!);
    }
    Atomics.store(ram, 2, 1); // STOP
    for (let v = 0; v < NV; v++) if (wfi[v]) pulseSpi(vm, spis[v]![0]!); // wake the sleepers to see STOP
    await within(run.promise, 10_000, 'the guests to return');
    for (const s of all) expect(Atomics.load(ram, R.ACK + s), `SPI ${s}`).toBe(inj.get(s));
  });
});

