/**
 * The distributor's per-IRQ registers against a reference, while the driver storms four SPIs (as
 * spi-storm): every vCPU keeps its own model of what each register must read (spec §1.6 defaults,
 * §6 semantics) and makes random writes, at every width the register takes and at some it does
 * not, to the first and last INTID of each range (SGIs, PPIs, the first SPI, the last one, the
 * first INTID past nr_irqs), reading each back at a random width:
 *
 * - IPRIORITYR: byte-granular, the implemented bits (0xf8) only;
 * - IGROUPR, ISENABLER/ICENABLER: one bit per INTID; ICFGR: two, the edge bit writable for SPIs
 *   only (SGIs edge, PPIs level, read-only);
 * - GICv2 ITARGETSR: SPIs keep the online vCPUs' bits, private bytes read as the accessor's own
 *   CPU; GICv3 IROUTER: Aff2.Aff1.Aff0 only, upper word RAZ/WI; ITARGETSR and IGRPMODR RAZ/WI;
 *   the distributor's private INTIDs RAZ/WI (they are in the redistributor's SGI frame);
 * - INTIDs at or past nr_irqs RAZ/WI; an access of a width the register does not take, or not
 *   naturally aligned, reads 0 and writes nothing;
 * - CTLR, TYPER, TYPER2, IIDR and PIDR2 read what the configuration implies.
 *
 * vCPU 0 works on the SPIs, every vCPU on its own private INTIDs. The storm's SPIs keep their
 * routing, priority, enable, group and trigger (each write carries their modelled bits), so injections
 * still reach the guest; the others are never made pending. GICv3 here; gicd-sweep-v2 is GICv2.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import { VGIC_NR_IRQS_LEGACY } from '../../uapi/kvm.js';
import {
  GICD_CTLR, GICD_ICENABLER, GICD_ICFGR, GICD_IGROUPR, GICD_IGRPMODR, GICD_IIDR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER,
  GICD_ITARGETSR, GICD_PIDR2, GICD_TYPER, GICD_TYPER2, GICR_SGI_OFFSET,
} from '../../vgic/mmio/offsets.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkTaskAccounting, guestPrologue, hex32, idleForever, spiStormUntilDone } from './common.js';

export const info: ScenarioInfo = {
  name: 'gicd-sweep',
  description: 'GICD/GICR per-IRQ registers written and read back at every width against a reference model, first and last INTID of each range, during an SPI storm',
  gic: 'v3',
  vcpus: 2,
  iterations: 80,
  spis: 4,
};

/** The stress VM's interrupts: the default nr_irqs of a vgic device (VGIC_NR_IRQS_LEGACY). */
const NR_IRQS = VGIC_NR_IRQS_LEGACY;
/** Random register accesses per vCPU. */
const STEPS = 300;

const W = SRAM.SCRATCH;
/** Per vCPU: steps done, mismatches, and the first one (what, INTID, expected, read). */
const DONE = W;
const ERRORS = W + 16;
const FIRST = W + 32;

/** Register families of a step. */
const F_PRIO = 0;
const F_GROUP = 1;
const F_SENABLE = 2;
const F_CENABLE = 3;
const F_CFG = 4;
const F_TARGET = 5;
const F_ROUTE = 6;
const F_GRPMOD = 7;
const F_MISC = 8;
const FAMILY = ['IPRIORITYR', 'IGROUPR', 'ISENABLER', 'ICENABLER', 'ICFGR', 'ITARGETSR', 'IROUTER', 'IGRPMODR', 'CTLR/TYPER/IIDR/PIDR2'];

/** What a vCPU believes the registers hold: the SPIs' (vCPU 0's) and its own private INTIDs'. */
class Model {
  readonly prio = new Uint8Array(NR_IRQS);
  readonly group = new Uint8Array(NR_IRQS);
  readonly enabled = new Uint8Array(NR_IRQS);
  readonly edge = new Uint8Array(NR_IRQS);
  /** v2 ITARGETSR bytes (SPIs); v3 IROUTER affinity. */
  readonly target = new Uint32Array(NR_IRQS);
  /** The storm's SPIs: writes keep their routing, enable, group and trigger. */
  readonly fixed = new Uint8Array(NR_IRQS);

  constructor(readonly v3: boolean, a: ScenarioArgs, n: number) {
    // Spec §1.6: SGIs enabled and edge, PPIs disabled and level, SPIs disabled and edge; priority
    // 0; group 1 on v3, 0 on v2; SPI targets 0 / affinity 0.
    for (let i = 0; i < NR_IRQS; i++) {
      this.group[i] = v3 ? 1 : 0;
      this.enabled[i] = i < 16 ? 1 : 0;
      this.edge[i] = i < 16 || i >= 32 ? 1 : 0;
    }
    // guestPrologue: the storm's SPIs routed round-robin and enabled.
    a.spis.forEach((s, k) => {
      this.enabled[s] = 1;
      this.target[s] = v3 ? affinity(k % n) : 1 << (k % n);
      this.fixed[s] = 1;
    });
  }
}

/** GICD_IROUTER / MPIDR affinity of vcpu_id `id` (Aff0 = id & 0xf, Aff1 = id >> 4). */
const affinity = (id: number): number => (id & 0xf) | (((id >> 4) & 0xff) << 8);

interface Ctx {
  cpu: GuestCpu;
  m: Model;
  prng: Prng;
  v3: boolean;
}

function mismatch(c: Ctx, family: number, intid: number, expected: number, got: number): void {
  const { cpu } = c;
  if (cpu.add(ERRORS + cpu.id, 1) !== 0) return;
  const f = FIRST + 4 * cpu.id;
  cpu.store(f, family);
  cpu.store(f + 1, intid);
  cpu.store(f + 2, expected | 0);
  cpu.store(f + 3, got | 0);
}

/** Does this vCPU's access to `intid` reach a register (not RAZ/WI)? `viaGicr`: the SGI frame. */
function live(c: Ctx, intid: number, viaGicr: boolean): boolean {
  if (intid >= NR_IRQS) return false;
  if (!c.v3) return true;
  return viaGicr ? intid < 32 : intid >= 32;
}

function frame(c: Ctx, intid: number, viaGicr: boolean): number {
  void intid;
  return viaGicr ? c.cpu.gicrBase + GICR_SGI_OFFSET : c.cpu.gicdBase;
}

/** A byte-per-INTID register's byte for `intid`, as the model says. */
function byteOf(c: Ctx, family: number, intid: number, viaGicr: boolean): number {
  if (!live(c, intid, viaGicr)) return 0;
  if (family === F_PRIO) return c.m.prio[intid]!;
  // ITARGETSR: RAZ on v3; on v2 the private bytes read as the accessor's own CPU interface.
  if (c.v3) return 0;
  return intid < 32 ? 1 << c.cpu.id : c.m.target[intid]!;
}

/** A bit-per-INTID register's bit for `intid`. */
function bitOf(c: Ctx, family: number, intid: number, viaGicr: boolean): number {
  if (!live(c, intid, viaGicr)) return 0;
  if (family === F_GROUP) return c.m.group[intid]!;
  if (family === F_GRPMOD) return 0;
  return c.m.enabled[intid]!;
}

/** An aligned word of a register family, as the model says. */
function expectedWord(c: Ctx, family: number, first: number, viaGicr: boolean): number {
  let v = 0;
  if (family === F_PRIO || family === F_TARGET) for (let i = 0; i < 4; i++) v |= byteOf(c, family, first + i, viaGicr) << (8 * i);
  else if (family === F_CFG) for (let i = 0; i < 16; i++) v |= (live(c, first + i, viaGicr) ? c.m.edge[first + i]! << (2 * i + 1) : 0);
  else for (let i = 0; i < 32; i++) v |= bitOf(c, family, first + i, viaGicr) << i;
  return v >>> 0;
}

/** Register offset of family and the first INTID of the word holding `intid`. */
function wordOf(family: number, intid: number): { off: number; first: number } {
  switch (family) {
    case F_PRIO:
      return { off: GICD_IPRIORITYR + (intid & ~3), first: intid & ~3 };
    case F_TARGET:
      return { off: GICD_ITARGETSR + (intid & ~3), first: intid & ~3 };
    case F_CFG:
      return { off: GICD_ICFGR + 4 * (intid >> 4), first: intid & ~15 };
    default: {
      const base = family === F_GROUP ? GICD_IGROUPR : family === F_SENABLE ? GICD_ISENABLER : family === F_CENABLE ? GICD_ICENABLER : GICD_IGRPMODR;
      return { off: base + 4 * (intid >> 5), first: intid & ~31 };
    }
  }
}

/** Write `val` (a whole word, or byte `intid` with len 1) and update the model as the spec says. */
function write(c: Ctx, family: number, intid: number, viaGicr: boolean, len: number, raw: number): void {
  const { m } = c;
  const { off, first } = wordOf(family, intid);
  const base = frame(c, intid, viaGicr);
  if (family === F_PRIO || family === F_TARGET) {
    const lo = len === 1 ? intid : first;
    let val = 0;
    for (let i = 0; i < len; i++) {
      const id = lo + i;
      let b = (raw >>> (8 * i)) & 0xff;
      // The storm's SPIs keep their targets and their priority (0xf8 would be masked by the PMR).
      if (m.fixed[id]) b = family === F_TARGET ? m.target[id]! : m.prio[id]!;
      val |= b << (8 * i);
      if (!live(c, id, viaGicr)) continue;
      if (family === F_PRIO) m.prio[id] = b & 0xf8;
      else if (!c.v3 && id >= 32) m.target[id] = b & ((1 << c.cpu.nrVcpus) - 1);
    }
    c.cpu.mmioWrite(base + (len === 1 ? off + (intid & 3) : off), val >>> 0, len);
    return;
  }
  let val = raw >>> 0;
  if (family === F_CFG) {
    for (let i = 0; i < 16; i++) {
      const id = first + i;
      if (m.fixed[id]) val = m.edge[id] ? val | (1 << (2 * i + 1)) : val & ~(1 << (2 * i + 1));
      if (live(c, id, viaGicr) && id >= 32) m.edge[id] = (val >>> (2 * i + 1)) & 1;
    }
  } else {
    for (let i = 0; i < 32; i++) {
      const id = first + i;
      // Keep the storm's SPIs as they are, and the SGIs enabled (no scenario traffic needs
      // them off, and whether a GICv2's SGI enables are writable is the implementation's).
      const keep = m.fixed[id] || (id < 16 && (family === F_SENABLE || family === F_CENABLE));
      if (keep) {
        const want = family === F_GROUP ? m.group[id]! : family === F_SENABLE ? 0 : family === F_CENABLE ? 0 : (val >>> i) & 1;
        val = want ? val | (1 << i) : val & ~(1 << i);
      }
      if (!live(c, id, viaGicr)) continue;
      const bit = (val >>> i) & 1;
      if (family === F_GROUP) m.group[id] = bit;
      else if (family === F_SENABLE && bit) m.enabled[id] = 1;
      else if (family === F_CENABLE && bit) m.enabled[id] = 0;
    }
  }
  c.cpu.mmioWrite(base + off, val >>> 0, 4);
}

/** Read back at a random width the register takes, and compare with the model. */
function readBack(c: Ctx, family: number, intid: number, viaGicr: boolean): void {
  const { off, first } = wordOf(family, intid);
  const base = frame(c, intid, viaGicr);
  const want = expectedWord(c, family, first, viaGicr);
  if ((family === F_PRIO || family === F_TARGET) && c.prng.chance(0.5)) {
    const lane = intid & 3;
    const got = c.cpu.mmioRead(base + off + lane, 1);
    if (got !== ((want >>> (8 * lane)) & 0xff)) mismatch(c, family, intid, (want >>> (8 * lane)) & 0xff, got);
    return;
  }
  const got = c.cpu.mmioRead(base + off, 4) >>> 0;
  if (got !== want) mismatch(c, family, intid, want, got);
}

/** An access the register does not take (a half-word, or a word not aligned): reads 0, writes nothing. */
function badAccess(c: Ctx, family: number, intid: number, viaGicr: boolean): void {
  const { off } = wordOf(family, intid);
  const base = frame(c, intid, viaGicr);
  const byteReg = family === F_PRIO || family === F_TARGET;
  const addr = byteReg ? base + off + 1 : base + off + (c.prng.chance(0.5) ? 2 : 0);
  const len = byteReg ? (c.prng.chance(0.5) ? 2 : 4) : c.prng.chance(0.5) ? 1 : 2;
  c.cpu.mmioWrite(addr, c.prng.nextU32(), len);
  const got = c.cpu.mmioRead(addr, len);
  if (got !== 0) mismatch(c, family, intid, 0, got);
}

/** GICv3 IROUTER<intid> (an SPI): 64-bit or low-word writes, upper word RAZ/WI, Aff2.Aff1.Aff0 kept. */
function route(c: Ctx, intid: number): void {
  const addr = c.cpu.gicdBase + GICD_IROUTER + 8 * intid;
  const raw = c.prng.nextU32();
  const fixed = c.m.fixed[intid] !== 0;
  const val = fixed ? c.m.target[intid]! : raw;
  const live = intid < NR_IRQS;
  if (c.prng.chance(0.3)) c.cpu.mmioWrite(addr + 4, c.prng.nextU32(), 4);
  else {
    c.cpu.mmioWrite(addr, val, c.prng.chance(0.5) ? 8 : 4);
    if (live && !fixed) c.m.target[intid] = val & 0xffffff;
  }
  const want = live ? c.m.target[intid]! : 0;
  const got = c.prng.chance(0.5) ? c.cpu.mmioRead(addr, 8) : c.cpu.mmioRead(addr, 4);
  if (got !== want) mismatch(c, F_ROUTE, intid, want, got);
  const hi = c.cpu.mmioRead(addr + 4, 4);
  if (hi !== 0) mismatch(c, F_ROUTE, intid, 0, hi);
}

/** The identification and control registers the configuration determines (spec §6). */
function misc(c: Ctx): void {
  const { cpu, v3 } = c;
  const d = cpu.gicdBase;
  const itLines = NR_IRQS / 32 - 1;
  const checks: [number, number][] = v3
    ? [[cpu.mmioRead(d + GICD_CTLR), 0x52], [cpu.mmioRead(d + GICD_TYPER), (itLines | (9 << 19)) >>> 0], [cpu.mmioRead(d + GICD_TYPER2), 0],
      [cpu.mmioRead(d + GICD_PIDR2), 0x3b], [cpu.mmioRead(cpu.gicrBase + GICD_PIDR2), 0x3b]]
    : [[cpu.mmioRead(d + GICD_CTLR), 1], [cpu.mmioRead(d + GICD_TYPER), (((cpu.nrVcpus - 1) & 7) << 5) | itLines]];
  // IIDR: ProductID 'K', Implementer ARM; the Revision is the VMM's choice.
  checks.push([(cpu.mmioRead(d + GICD_IIDR) & ~0xf000) >>> 0, ((0x4b << 24) | 0x43b) >>> 0]);
  checks.forEach(([got, want], i) => {
    if (got >>> 0 !== want) mismatch(c, F_MISC, i, want, got);
  });
}

/** INTIDs worth a step: the ends of each range, past nr_irqs, and any other. */
function pickIntid(c: Ctx, spis: boolean): number {
  const p = c.prng;
  if (!spis) return [0, 15, 16, 31, p.int(32)][p.int(5)]!;
  return [32, 63, 64, NR_IRQS - 1, NR_IRQS, NR_IRQS + 31, 1019, 32 + p.int(NR_IRQS - 32), 32 + p.int(NR_IRQS - 32)][p.int(9)]!;
}

function step(c: Ctx): void {
  const { prng, v3 } = c;
  const spis = c.cpu.id === 0 && prng.chance(0.7);
  let intid = pickIntid(c, spis);
  // GICv3: private INTIDs through the redistributor, or (RAZ/WI) through the distributor.
  const viaGicr = v3 && !spis && prng.chance(0.8);
  // IROUTER is an SPI's: only vCPU 0, whose model has the SPIs, writes it.
  const families = v3 ? [F_PRIO, F_GROUP, F_SENABLE, F_CENABLE, F_CFG, F_TARGET, F_GRPMOD, ...(c.cpu.id === 0 ? [F_ROUTE] : [])] : [F_PRIO, F_GROUP, F_SENABLE, F_CENABLE, F_CFG, F_TARGET];
  const family = families[prng.int(families.length)]!;
  if (family === F_ROUTE) {
    if (intid < 32) intid = 32 + prng.int(NR_IRQS - 32);
    route(c, Math.min(intid, 1019));
    return;
  }
  if (viaGicr && family === F_TARGET) return readBack(c, family, intid, viaGicr);
  if (prng.chance(0.1)) return badAccess(c, family, intid, viaGicr);
  const byteReg = family === F_PRIO || family === F_TARGET;
  write(c, family, intid, viaGicr, byteReg && prng.chance(0.5) ? 1 : 4, prng.nextU32());
  readBack(c, family, intid, viaGicr);
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  const v3 = cpu.gic === 3;
  const c: Ctx = { cpu, m: new Model(v3, a, cpu.nrVcpus), prng: new Prng(deriveSeed(a.seed, 300 + cpu.id)), v3 };
  while (cpu.load(SRAM.READY) < cpu.nrVcpus) cpu.relax();
  misc(c);
  // Defaults first: every word of the ranges' ends, as spec §1.6 has them.
  for (const family of [F_PRIO, F_GROUP, F_SENABLE, F_CFG, F_TARGET]) {
    for (const intid of cpu.id === 0 ? [0, 31, 32, NR_IRQS - 1, NR_IRQS] : [0, 31]) readBack(c, family, intid, v3 && intid < 32);
  }
  for (let i = 0; i < STEPS; i++) step(c);
  misc(c);
  cpu.add(DONE + cpu.id, 1);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormUntilDone(d, a, DONE);
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  return checkTaskAccounting(ram, a, DONE, `${STEPS} register accesses`, ERRORS, (v, n) => {
    const f = FIRST + 4 * v;
    return `${n} register read-backs differed from the reference; the first: ${FAMILY[Atomics.load(ram, f)]} INTID ${Atomics.load(ram, f + 1)} read ${hex32(Atomics.load(ram, f + 3))}, expected ${hex32(Atomics.load(ram, f + 2))}`;
  });
}
