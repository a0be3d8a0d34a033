/**
 * More interrupts in flight than list registers (two LRs per vCPU, four SPIs each), in rounds:
 *
 * 1. Burst: every vCPU masks IRQs and sleeps in WFI; the driver injects a random subset of each
 *    vCPU's SPIs in a random order, the first one waking the sleeper at whatever point of the
 *    halt path it is (poll, park, re-check). Then the guest unmasks and takes them, ending each at
 *    once. Everything was pending before the unmask, so the acknowledgements must come in
 *    priority order, each SPI exactly once: the LRs must hold the highest-priority part of the
 *    ap_list (flush sorts when it does not fit) and be refilled as they empty (underflow
 *    maintenance) until the list is drained.
 * 2. Nesting: on one vCPU the guest sends itself SGI 0 (the lowest priority) and acknowledges
 *    without ending; the driver injects that vCPU's SPIs one at a time in rising priority, each
 *    preempting the last, until three to five are active at once: more than the LRs, so the older active ones leave the LRs (spec §4.3:
 *    active ones are listed first, but there is no room). The guest then ends them, newest
 *    first; an EOI of one that no LR holds is counted by the hardware (EOIcount) and must still
 *    deactivate it (in-order EOIs usually get the older ones back into LRs first: each LR EOI
 *    raises underflow maintenance and a refill). Each must then be inactive, the running priority idle again, and
 *    each is in the next round's burst: one left active would never be taken again.
 *
 * Each vCPU also sends itself SGIs 0 and 1 (at their own priorities) into some bursts.
 *
 * GICv3 here; lr-overflow-v2 is the same on GICv2.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import { checkSpiAccounting, spinUntil, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'lr-overflow',
  description: 'more SPIs pending and active than LRs: priority-ordered refill, nested actives beyond the LRs (EOIcount), WFI woken by bursts',
  gic: 'v3',
  vcpus: 2,
  nrLr: 2,
  iterations: 24,
  spis: 8,
};

/**
 * Priority of the k-th SPI of a vCPU (a.spis[v + k * n]): distinct per vCPU, and distinct in the
 * group-priority bits [7:4] so that each preempts a lower one whatever the binary point.
 */
const PRIOS = [0xc0, 0x40, 0xa0, 0x60, 0x80, 0x20, 0xb0, 0x50];
/**
 * SGIs 0 and 1 a vCPU may send itself into a burst (SGI 0 is the first private record, index 0:
 * a link or unlink that mistakes index 0 for "none" shows there), and their priorities.
 */
const SGIS = [0, 1];
const SGI_PRIOS = [0xd0, 0x30];
/** Burst mask bit of SGI i (SPIs use the low bits: their index in a.spis). */
const SGI_BIT0 = 24;

const W = SRAM.SCRATCH;
// Round words hold the round + 1: guest RAM starts zeroed, which must mean "none yet".
/** Per vCPU: the round it is masked and asleep for. */
const MASKED = W;
/** The round whose burst is injected (BURST is written). */
const INJECTED = W + 16;
/** Per vCPU: the burst, as a bit mask over indices into a.spis. */
const BURST = W + 32;
/** Per vCPU: the round it has drained. */
const DRAINED = W + 48;
/** Per vCPU: errors, and the first one (a code). */
const ERRORS = W + 64;
const FIRST_ERROR = W + 80;
/** Nesting: acknowledgements taken without EOI; the round the guest may end them; ended. */
const NEST_ACKS = W + 96;
const NEST_GO = W + 97;
const NEST_DONE = W + 98;
/** The round whose nesting the guest has begun (its SGI 0 taken and kept active). */
const NEST_READY = W + 99;
/** 1 + the index (into a.spis) of the nested SPI injected again while active, 0 for none. */
const NEST_AGAIN = W + 100;
/** Per vCPU: rounds done. */
const ROUNDS_DONE = W + 112;

const E_FOREIGN = 1;
const E_DUPLICATE = 2;
const E_SPURIOUS = 3;
const E_ORDER = 4;
const E_RPR = 5;
const E_NEST_TWICE = 6;
const ERROR_TEXT: Record<number, string> = {
  [E_FOREIGN]: 'an SPI routed elsewhere was taken',
  [E_DUPLICATE]: 'an SPI of the burst was taken twice',
  [E_SPURIOUS]: 'an SPI not in the burst was taken',
  [E_ORDER]: 'an SPI was taken while a higher-priority one of the burst was pending',
  [E_RPR]: 'the running priority was not idle after every active SPI was ended',
  [E_NEST_TWICE]: 'an SPI already active was taken again while nesting',
};

/** Rounds: the scenario's iterations, then one last burst of every SPI. */
const rounds = (a: ScenarioArgs): number => Math.max(1, a.iterations);
const prioOf = (k: number, n: number): number => PRIOS[Math.floor(k / n) % PRIOS.length]!;
/** Priority of burst bit `bit`: an SPI's index, or SGI_BIT0 + an SGI. */
const prioOfBit = (bit: number, n: number): number => (bit >= SGI_BIT0 ? SGI_PRIOS[bit - SGI_BIT0]! : prioOf(bit, n));
/** Indices into a.spis of vCPU v's SPIs. */
const mineOf = (a: ScenarioArgs, n: number, v: number): number[] => a.spis.map((_, k) => k).filter((k) => k % n === v);
/** The vCPU that nests in round r (none in the last round). */
const nesterOf = (r: number, a: ScenarioArgs, n: number): number => (r < rounds(a) ? r % n : -1);

function fail(c: GuestCpu, code: number): void {
  if (c.add(ERRORS + c.id, 1) === 0) c.store(FIRST_ERROR + c.id, code);
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  const n = cpu.nrVcpus;
  const v = cpu.id;
  let burst = 0;
  let acked = 0;
  let nesting = false;
  /** The nested SPI whose second instance is expected (outside any burst), or -1. */
  let again = -1;
  const stack: number[] = [];
  const prng = new Prng(deriveSeed(a.seed, 400 + v));
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    const id = iar & 0x3ff;
    if (id === 1023) return;
    const sgi = SGIS.indexOf(id);
    const k = sgi >= 0 ? SGI_BIT0 + sgi : a.spis.indexOf(id);
    if (k < 0 || (sgi < 0 && k % n !== v)) {
      fail(c, E_FOREIGN);
      c.eoi(iar);
      return;
    }
    if (sgi >= 0) c.add(SRAM.SGI_ACKS + 16 * v + id, 1);
    else {
      Atomics.store(c.ram, SRAM.SEEN + id, Atomics.load(c.ram, SRAM.GEN + id));
      c.add(SRAM.ACKS + id, 1);
    }
    if (nesting) {
      // Acknowledged, not ended: it stays active and raises the running priority.
      if (stack.includes(iar)) fail(c, E_NEST_TWICE);
      stack.push(iar);
      c.add(NEST_ACKS, 1);
      return;
    }
    const bit = 1 << k;
    if (k === again) again = -1;
    else if (acked & bit) fail(c, E_DUPLICATE);
    else if (!(burst & bit)) fail(c, E_SPURIOUS);
    else {
      for (let j = 0; j < 32; j++) {
        if (j !== k && burst & ~acked & (1 << j) && prioOfBit(j, n) < prioOfBit(k, n)) fail(c, E_ORDER);
      }
    }
    acked |= bit;
    c.eoi(iar);
    // Now and then a trapped access right after the EOI: the vCPU exits and prunes what it ended
    // while the rest of the burst is still listed around it.
    if (prng.chance(0.3)) c.mmioRead(c.gicdBase);
  });
  if (v === 0) {
    a.spis.forEach((s, k) => {
      cpu.driver.route(s, k % n);
      cpu.driver.setPriority(s, prioOf(k, n));
      cpu.driver.enable(s);
    });
    cpu.driver.enableDistributor();
  }
  SGIS.forEach((sgi, i) => cpu.driver.setPriority(sgi, SGI_PRIOS[i]!));
  cpu.add(SRAM.READY, 1);
  spinUntil(cpu, () => cpu.load(SRAM.READY) >= n, 'every vCPU to come up');
  for (let r = 0; r <= rounds(a); r++) {
    cpu.disableIrqs();
    // Our own SGIs join the burst (sent masked: they wait with the SPIs).
    let sgis = 0;
    SGIS.forEach((sgi, i) => {
      if (!prng.chance(0.5)) return;
      cpu.add(SRAM.SGI_SENT + 16 * v + sgi, 1);
      cpu.sendSgi(sgi, 'self');
      sgis |= 1 << (SGI_BIT0 + i);
    });
    cpu.store(MASKED + v, r + 1);
    // Masked WFI: a pending SPI ends it (WFI ignores PSTATE.I); every burst has one of ours.
    while (cpu.load(INJECTED) !== r + 1) cpu.wfi();
    burst = cpu.load(BURST + v) | sgis;
    acked = 0;
    cpu.enableIrqs();
    spinUntil(cpu, () => acked === burst, `the burst of round ${r}`);
    cpu.store(DRAINED + v, r + 1);
    if (nesterOf(r, a, n) !== v) continue;
    nesting = true;
    // The lowest-priority active one is our own SGI 0, the first record of vCPU 0: the SPIs on
    // top of it end (and are unlinked) while it is still on the ap_list, ahead of them.
    cpu.add(SRAM.SGI_SENT + 16 * v + SGIS[0]!, 1);
    cpu.sendSgi(SGIS[0]!, 'self');
    spinUntil(cpu, () => stack.length === 1, `SGI ${SGIS[0]} to start the nesting of round ${r}`);
    cpu.store(NEST_READY, r + 1);
    spinUntil(cpu, () => cpu.load(NEST_GO) === r + 1, `the nesting of round ${r}`);
    nesting = false;
    again = cpu.load(NEST_AGAIN) - 1;
    const second = again;
    // EOImode 0: each EOI drops the highest active priority, so end them newest first, letting
    // the vCPU exit (and prune) between the EOIs now and then.
    while (stack.length) {
      cpu.eoi(stack.pop()!);
      if (prng.chance(0.5)) cpu.mmioRead(cpu.gicdBase);
    }
    // The one injected again while active is taken again, with no exit of ours to help: its EOI
    // (outside the LRs, counted) must itself bring the vCPU out to deactivate it and present
    // the pending instance (EOI maintenance, LRENPIE).
    if (second >= 0) spinUntil(cpu, () => again < 0, `SPI ${a.spis[second]} again after its EOI (round ${r})`);
    if (cpu.rpr() !== 0xff) fail(cpu, E_RPR);
    cpu.store(NEST_DONE, r + 1);
  }
  cpu.add(ROUNDS_DONE + v, 1);
  cpu.enableIrqs();
  for (;;) cpu.wfi();
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  if (!waitReady(d)) return d.stopVm();
  const n = d.nrVcpus;
  let nested: number[] = [];
  for (let r = 0; r <= rounds(a); r++) {
    const allMasked = (): boolean => Array.from({ length: n }, (_, v) => Atomics.load(d.ram, MASKED + v) === r + 1).every(Boolean);
    if (!d.waitFor(allMasked, `every vCPU masked for round ${r}`)) return d.stopVm();
    // The burst: a random part of each vCPU's SPIs (all of them in the last round), never none,
    // and whatever was active in the last nesting; injected in a random order, some twice.
    const order: number[] = [];
    for (let v = 0; v < n; v++) {
      const mine = mineOf(a, n, v);
      const pick = mine.filter((k) => r === rounds(a) || nested.includes(k) || d.prng.chance(0.6));
      order.push(...(pick.length ? pick : [mine[d.prng.int(mine.length)]!]));
    }
    for (let i = order.length - 1; i > 0; i--) {
      const j = d.prng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const burst = new Array<number>(n).fill(0);
    for (const k of order) {
      const s = a.spis[k]!;
      const acc = Atomics.load(d.ram, SRAM.ACCEPTED + s);
      d.injectCounted(s);
      if (d.prng.chance(0.2)) d.injectCounted(s);
      if (Atomics.load(d.ram, SRAM.ACCEPTED + s) > acc) burst[k % n]! |= 1 << k;
      d.relax();
    }
    for (let v = 0; v < n; v++) Atomics.store(d.ram, BURST + v, burst[v]!);
    Atomics.store(d.ram, INJECTED, r + 1);
    const allDrained = (): boolean => Array.from({ length: n }, (_, v) => Atomics.load(d.ram, DRAINED + v) === r + 1).every(Boolean);
    if (!d.waitFor(allDrained, `every vCPU to take its burst of round ${r}`)) return d.stopVm();
    const t = nesterOf(r, a, n);
    nested = [];
    if (t < 0) continue;
    // Rising priority (falling value): each one preempts the one before.
    const mine = mineOf(a, n, t).sort((x, y) => prioOf(y, n) - prioOf(x, n));
    nested = mine.slice(0, Math.min(mine.length, 2 + d.prng.int(3)));
    if (!d.waitFor(() => Atomics.load(d.ram, NEST_READY) === r + 1, `vCPU ${t} to begin nesting (round ${r})`)) return d.stopVm();
    for (const k of nested) {
      const before = Atomics.load(d.ram, NEST_ACKS);
      d.injectCounted(a.spis[k]!);
      if (!d.waitFor(() => Atomics.load(d.ram, NEST_ACKS) > before, `SPI ${a.spis[k]} to preempt on vCPU ${t} (round ${r})`)) return d.stopVm();
    }
    // The oldest (lowest-priority, the first out of the LRs) once more while it is active.
    Atomics.store(d.ram, NEST_AGAIN, nested.length ? nested[0]! + 1 : 0);
    if (nested.length) d.injectCounted(a.spis[nested[0]!]!);
    Atomics.store(d.ram, NEST_GO, r + 1);
    const spis = nested.map((k) => a.spis[k]!);
    if (!d.waitFor(() => Atomics.load(d.ram, NEST_DONE) === r + 1 && d.spisInactive(spis), `the nested SPIs ${spis.join(', ')} of vCPU ${t} to be ended and inactive (round ${r})`)) return d.stopVm();
  }
  const finished = (): boolean => Array.from({ length: n }, (_, v) => Atomics.load(d.ram, ROUNDS_DONE + v) === 1).every(Boolean);
  d.waitFor(() => finished() && d.spisQuiet(a.spis) && d.spisInactive(a.spis), 'every vCPU to finish and every SPI to settle');
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out = checkSpiAccounting(ram, a);
  const vcpus = Atomics.load(ram, SRAM.READY);
  for (let v = 0; v < vcpus; v++) {
    for (const sgi of SGIS) {
      const sent = Atomics.load(ram, SRAM.SGI_SENT + 16 * v + sgi);
      const acks = Atomics.load(ram, SRAM.SGI_ACKS + 16 * v + sgi);
      if (sent !== acks) out.push(`vCPU ${v}: sent itself SGI ${sgi} ${sent} times, took it ${acks} times`);
    }
    if (Atomics.load(ram, ROUNDS_DONE + v) !== 1) out.push(`vCPU ${v}: did not finish its ${rounds(a) + 1} rounds`);
    const errors = Atomics.load(ram, ERRORS + v);
    if (errors !== 0) out.push(`vCPU ${v}: ${errors} errors, the first: ${ERROR_TEXT[Atomics.load(ram, FIRST_ERROR + v)] ?? 'unknown'}`);
  }
  return out;
}
