/**
 * KVM_EXIT_MMIO while interrupts are in flight: the driver storms SPIs (as spi-storm) while every
 * vCPU, with interrupts unmasked, keeps exiting to the VMM for MMIO outside the GIC frames (the
 * default handler: a register file in shared memory). Each exit returns from KVM_RUN (vcpu->mutex
 * released, the vCPU outside guest mode and outside the kernel) and enters again: a kick or
 * request that lands meanwhile must be seen at the re-entry. Every vCPU has registers of its own
 * below and above 4 GiB at the same low 32 bits (an address's high word must count) and writes
 * them at widths 1, 2 and 4: a read must return what was last written there, truncated to the
 * narrower of the two widths. vCPU 0 also writes a register all vCPUs read: its value only grows.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkTaskAccounting, guestPrologue, hex32, idleForever, spiStormUntilDone } from './common.js';

export const info: ScenarioInfo = {
  name: 'user-mmio',
  description: 'MMIO exits to the VMM (below and above 4 GiB, every width) while SPIs are in flight',
  vcpus: 2,
  iterations: 120,
  spis: 4,
};

/** Device registers: vCPU v's k-th at LOW + 0x1000 * v + 8 * k, and the same plus 4 GiB. */
const LOW = 0x4000_0000;
const HIGH = 2 ** 32 + LOW;
const REGS = 6;
/** vCPU 0's counter register, read by everyone. */
const COUNTER = 0x5000_0000;
const STEPS = 250;

const W = SRAM.SCRATCH;
/** Per vCPU: steps done, mismatches, the first one (address low word, expected, read). */
const DONE = W;
const ERRORS = W + 16;
const FIRST = W + 32;

const maskOf = (len: number): number => (len >= 4 ? 0xffffffff : (1 << (8 * len)) - 1);

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  const prng = new Prng(deriveSeed(a.seed, 500 + cpu.id));
  const addrs: number[] = [];
  for (let k = 0; k < REGS; k++) addrs.push(LOW + 0x1000 * cpu.id + 8 * k, HIGH + 0x1000 * cpu.id + 8 * k);
  // Never-written registers read 0.
  const model = new Map<number, number>(addrs.map((x) => [x, 0]));
  const fail = (addr: number, want: number, got: number): void => {
    if (cpu.add(ERRORS + cpu.id, 1) !== 0) return;
    cpu.store(FIRST + 3 * cpu.id, addr | 0);
    cpu.store(FIRST + 3 * cpu.id + 1, want | 0);
    cpu.store(FIRST + 3 * cpu.id + 2, got | 0);
  };
  let counter = 0;
  let seen = 0;
  for (let i = 0; i < STEPS; i++) {
    const addr = addrs[prng.int(addrs.length)]!;
    const len = [1, 2, 4][prng.int(3)]!;
    if (prng.chance(0.6)) {
      const v = prng.nextU32();
      cpu.mmioWrite(addr, v, len);
      model.set(addr, (v & maskOf(len)) >>> 0);
    }
    const rlen = [1, 2, 4][prng.int(3)]!;
    const want = (model.get(addr)! & maskOf(rlen)) >>> 0;
    const got = cpu.mmioRead(addr, rlen) >>> 0;
    if (got !== want) fail(addr, want, got);
    if (cpu.id === 0 && prng.chance(0.2)) cpu.mmioWrite(COUNTER, ++counter);
    else if (cpu.id !== 0 && prng.chance(0.2)) {
      const now = cpu.mmioRead(COUNTER) >>> 0;
      if (now < seen) fail(COUNTER, seen, now);
      seen = now;
    }
  }
  cpu.add(DONE + cpu.id, 1);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormUntilDone(d, a, DONE);
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const f = (v: number, k: number): string => hex32(Atomics.load(ram, FIRST + 3 * v + k));
  return checkTaskAccounting(ram, a, DONE, `${STEPS} MMIO exits`, ERRORS, (v, n) => `${n} MMIO reads differed from what was written; the first: at low word ${f(v, 0)} read ${f(v, 2)}, expected ${f(v, 1)}`);
}
