/**
 * The guest-visible CPU interface (spec §5.1 GICv3 ICC_* behaviour, §5.2 LR state machine, §5.3
 * GICv2 = same semantics on the GICV frame): IAR, EOIR, DIR, HPPIR, RPR, PMR, BPR, group enables.
 *
 * Each case is a script a one-vCPU guest interprets. A `sync` step hands control to the VMM, which
 * injects what the case says and releases the guest; the guest then forces a full exit (a
 * KVM_EXIT_MMIO) so everything queued is flushed into its list registers before the next step.
 * Read steps (iar, hppir, rpr, …) append their result to the list the guest returns. Expected
 * lists are written from the spec, never from a run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { guestFromFunction, type GuestCpu } from '../../src/index.js';
import { VmTracker, build, pulseSpi, startRun, waitRam, within, USER_MMIO_GPA } from '../helpers.js';

const SPURIOUS = 1023;
const IDLE = 0xff;

type Op =
  | ['iar', number?]
  | ['hppir', number?]
  | ['rpr']
  | ['eoi', number, number?]
  | ['dir', number]
  | ['pmr', number]
  | ['getpmr']
  | ['bpr0', number]
  | ['bpr1', number]
  | ['getbpr0']
  | ['getbpr1']
  | ['eoimode', boolean]
  | ['group', number, boolean]
  | ['sysw', string, number]
  | ['sync', number]
  | ['exit'];

interface Spi {
  id: number;
  prio: number;
  group?: number;
}

const scriptGuest = guestFromFunction((cpu: GuestCpu, args: { spis: Spi[]; ops: Op[]; userGpa: number }) => {
  cpu.initCpuInterface();
  for (const s of args.spis) {
    cpu.driver.setPriority(s.id, s.prio);
    if (s.group !== undefined) cpu.driver.setGroup(s.id, s.group);
    cpu.driver.route(s.id, 0);
    cpu.driver.enable(s.id);
  }
  cpu.driver.enableDistributor();
  cpu.store(0, 1); // READY
  const out: number[] = [];
  for (const op of args.ops) {
    switch (op[0]) {
      case 'iar':
        out.push(op[1] === undefined ? cpu.iar() : cpu.iar(op[1]));
        break;
      case 'hppir':
        out.push(op[1] === undefined ? cpu.hppir() : cpu.hppir(op[1]));
        break;
      case 'rpr':
        out.push(cpu.rpr());
        break;
      case 'eoi':
        if (op[2] === undefined) cpu.eoi(op[1]);
        else cpu.eoi(op[1], op[2]);
        break;
      case 'dir':
        cpu.dir(op[1]);
        break;
      case 'pmr':
        cpu.pmr = op[1];
        break;
      case 'getpmr':
        out.push(cpu.pmr);
        break;
      case 'bpr0':
        cpu.bpr0 = op[1];
        break;
      case 'bpr1':
        cpu.bpr1 = op[1];
        break;
      case 'getbpr0':
        out.push(cpu.bpr0);
        break;
      case 'getbpr1':
        out.push(cpu.bpr1);
        break;
      case 'eoimode':
        cpu.setEoiMode(op[1]);
        break;
      case 'group':
        cpu.enableGroup(op[1], op[2]);
        break;
      case 'sysw':
        cpu.sysregWrite(op[1] as never, op[2]);
        break;
      case 'sync':
        cpu.store(3, op[1]); // request
        while (cpu.load(1) < op[1]) cpu.relax(); // released
        cpu.mmioRead(args.userGpa);
        break;
      case 'exit':
        cpu.mmioRead(args.userGpa);
        break;
    }
  }
  return out;
});

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

/** Run `ops` on a one-vCPU VM; before releasing sync point k, pulse the SPIs in inject[k]. */
async function runScript(model: 2 | 3, spis: Spi[], ops: Op[], inject: Record<number, number[]>): Promise<number[]> {
  const { vm } = tracker.track(build(model, { vcpus: 1, guest: scriptGuest, args: { spis, ops, userGpa: USER_MMIO_GPA } }));
  const run = startRun(vm);
  await waitRam(vm, 0, 10_000, 'the guest to configure its SPIs', run);
  const syncs = ops.filter((o) => o[0] === 'sync').map((o) => o[1] as number);
  for (const k of syncs) {
    await waitRam(vm, 3, 10_000, `the guest to reach sync point ${k}`, run, (v) => v === k);
    for (const s of inject[k] ?? []) pulseSpi(vm, s);
    Atomics.store(vm.ram, 1, k);
  }
  const [r] = await within(run.promise, 20_000, 'the script guest to return');
  return r!.result as number[];
}

const A = 40;
const B = 41;
const C = 42;

describe.each([3, 2] as const)('GICv%i CPU interface', (model) => {
  it('nothing pending: IAR and HPPIR read 1023, RPR 0xFF; EOIR/DIR of 1023 are harmless', async () => {
    const ops: Op[] = [
      ['sync', 1],
      ['iar'],
      ['hppir'],
      ['rpr'],
      ['eoi', SPURIOUS],
      ['dir', SPURIOUS],
      ['rpr'],
      ['sync', 2], // now A is injected: still delivered normally
      ['iar'],
      ['rpr'],
      ['eoi', A],
      ['rpr'],
      ['exit'],
      ['iar'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x80 }], ops, { 2: [A] });
    expect(out).toEqual([SPURIOUS, SPURIOUS, IDLE, IDLE, A, 0x80, IDLE, SPURIOUS]);
  });

  it('IAR: highest priority first; the acknowledged interrupt is no longer pending (HPPIR moves on); EOI clears RPR', async () => {
    const ops: Op[] = [
      ['sync', 1],
      ['hppir'],
      ['hppir'], // reading HPPIR changes nothing
      ['iar'],
      ['rpr'],
      ['hppir'],
      ['eoi', B],
      ['rpr'],
      ['iar'],
      ['rpr'],
      ['eoi', A],
      ['rpr'],
      ['iar'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x90 }, { id: B, prio: 0x30 }], ops, { 1: [A, B] });
    expect(out).toEqual([B, B, B, 0x30, A, IDLE, A, 0x90, IDLE, SPURIOUS]);
  });

  it('preemption: a higher priority interrupt is acknowledged while another is active; a lower one is not (running priority)', async () => {
    const ops: Op[] = [
      ['sync', 1], // A (0x80)
      ['iar'], // A
      ['sync', 2], // C (0xa0) and B (0x40)
      ['iar'], // B preempts A
      ['rpr'], // 0x40
      ['iar'], // C cannot preempt B (or A): spurious
      ['hppir'], // … but it is the highest pending
      ['eoi', B],
      ['rpr'], // back to A's 0x80
      ['iar'], // C still cannot preempt A
      ['eoi', A],
      ['rpr'],
      ['iar'], // now C
      ['rpr'],
      ['eoi', C],
      ['rpr'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x80 }, { id: B, prio: 0x40 }, { id: C, prio: 0xa0 }], ops, { 1: [A], 2: [C, B] });
    expect(out).toEqual([A, B, 0x40, SPURIOUS, C, 0x80, SPURIOUS, IDLE, C, 0xa0, IDLE]);
  });

  it('equal priority does not preempt: a second interrupt of the same priority waits for the EOI', async () => {
    const ops: Op[] = [['sync', 1], ['iar'], ['sync', 2], ['iar'], ['hppir'], ['eoi', A], ['iar'], ['eoi', B], ['exit'], ['iar']];
    const out = await runScript(model, [{ id: A, prio: 0x60 }, { id: B, prio: 0x60 }], ops, { 1: [A], 2: [B] });
    expect(out).toEqual([A, SPURIOUS, B, B, SPURIOUS]);
  });

  it('PMR: reads back what was written (8 bits, 5 implemented); priority >= PMR is masked', async () => {
    const ops: Op[] = [
      ['pmr', 0xe8],
      ['getpmr'],
      ['pmr', 0x40],
      ['getpmr'],
      ['sync', 1], // A at 0x40: equal to PMR → masked
      ['iar'],
      ['hppir'],
      ['pmr', 0x48],
      ['iar'],
      ['eoi', A],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x40 }], ops, { 1: [A] });
    expect(out).toEqual([0xe8, 0x40, SPURIOUS, A, A]);
  });

  it('EOImode=0: EOIR deactivates, so a new edge after EOI is delivered again; DIR is ignored', async () => {
    const ops: Op[] = [
      ['sync', 1],
      ['iar'],
      ['dir', A], // no-op with EOImode=0
      ['eoi', A],
      ['sync', 2],
      ['iar'],
      ['eoi', A],
      ['exit'],
      ['iar'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x80 }], ops, { 1: [A], 2: [A] });
    expect(out).toEqual([A, A, SPURIOUS]);
  });

  it('EOImode=1: EOIR only drops priority (RPR idle); re-asserted edge waits for DIR', async () => {
    const ops: Op[] = [
      ['eoimode', true],
      ['sync', 1],
      ['iar'],
      ['rpr'],
      ['eoi', A],
      ['rpr'], // dropped, though A is still active
      ['sync', 2], // A again: pending+active, not presented
      ['iar'],
      ['exit'],
      ['iar'],
      ['dir', A],
      ['iar'],
      ['eoi', A],
      ['dir', A],
      ['exit'],
      ['iar'],
      ['rpr'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x80 }], ops, { 1: [A], 2: [A] });
    expect(out).toEqual([A, 0x80, IDLE, SPURIOUS, SPURIOUS, A, SPURIOUS, IDLE]);
  });

  it('EOImode=1 with two active interrupts: DIR deactivates in any order', async () => {
    const ops: Op[] = [
      ['eoimode', true],
      ['sync', 1],
      ['iar'], // B (0x20)
      ['eoi', B],
      ['iar'], // A (0x70): B's priority was dropped
      ['eoi', A],
      ['rpr'],
      ['dir', A],
      ['dir', B],
      ['sync', 2], // both again: both deliverable now that both were deactivated
      ['iar'],
      ['eoi', B],
      ['dir', B],
      ['iar'],
      ['eoi', A],
      ['dir', A],
      ['exit'],
      ['iar'],
    ];
    const out = await runScript(model, [{ id: A, prio: 0x70 }, { id: B, prio: 0x20 }], ops, { 1: [A, B], 2: [A, B] });
    expect(out).toEqual([B, A, IDLE, B, A, SPURIOUS]);
  });
});

describe('GICv3-only CPU interface rules', () => {
  it('group rules: IAR0/HPPIR0 do not return group-1 interrupts; a disabled group is not eligible', async () => {
    const ops: Op[] = [
      ['group', 1, false],
      ['sync', 1],
      ['iar'], // group 1 disabled
      ['hppir'],
      ['group', 1, true],
      ['iar', 0], // group-0 register, group-1 interrupt
      ['hppir', 0],
      ['hppir', 1],
      ['iar', 1],
      ['eoi', A, 1],
      ['rpr'],
    ];
    const out = await runScript(3, [{ id: A, prio: 0x80 }], ops, { 1: [A] });
    expect(out).toEqual([SPURIOUS, SPURIOUS, SPURIOUS, SPURIOUS, A, A, IDLE]);
  });

  it('group 0 interrupts are acknowledged through IAR0 when group 0 is enabled', async () => {
    const ops: Op[] = [
      ['sync', 1],
      ['iar', 0], // group 0 not enabled by initCpuInterface on v3
      ['group', 0, true],
      ['iar', 1],
      ['iar', 0],
      ['rpr'],
      ['eoi', A, 0],
      ['rpr'],
    ];
    const out = await runScript(3, [{ id: A, prio: 0x50, group: 0 }], ops, { 1: [A] });
    expect(out).toEqual([SPURIOUS, SPURIOUS, A, 0x50, IDLE]);
  });

  it('BPR: clamped to the minimum (BPR0 2, BPR1 3 with 5 priority bits); read back otherwise', async () => {
    const ops: Op[] = [['bpr0', 0], ['getbpr0'], ['bpr1', 0], ['getbpr1'], ['bpr0', 4], ['getbpr0'], ['bpr1', 6], ['getbpr1']];
    const out = await runScript(3, [], ops, {});
    expect(out).toEqual([2, 3, 4, 6]);
  });

  it('BPR1 sets the preemption granularity: group priority = priority[7:BPR1]', async () => {
    // Active A at 0x90; B at 0x88 pending. BPR1 = 4: groups 0x90 vs 0x80 → B preempts.
    // BPR1 = 5: groups 0x80 vs 0x80 → equal → B must wait.
    const script = (bpr1: number): Op[] => [['bpr1', bpr1], ['sync', 1], ['iar'], ['sync', 2], ['iar'], ['rpr']];
    const spis = [{ id: A, prio: 0x90 }, { id: B, prio: 0x88 }];
    expect(await runScript(3, spis, script(4), { 1: [A], 2: [B] })).toEqual([A, B, 0x80]);
    expect(await runScript(3, spis, script(5), { 1: [A], 2: [B] })).toEqual([A, SPURIOUS, 0x80]);
  });

  it('ICC_CTLR_EL1.CBPR=1: BPR1 reads BPR0+1 and BPR1 writes are ignored', async () => {
    const ops: Op[] = [['bpr0', 3], ['bpr1', 6], ['sysw', 'ICC_CTLR_EL1', 1], ['getbpr1'], ['bpr1', 7], ['getbpr1'], ['bpr0', 5], ['getbpr1']];
    const out = await runScript(3, [], ops, {});
    expect(out).toEqual([4, 4, 6]);
  });
});
