/**
 * The million-interrupt storm (issue 11): 10^6 edge SPIs on a 2-vCPU GICv3 VM running irq-sink, for
 * both locking designs, lockdep on. vCPU 0 spins with interrupts unmasked (only a kick's
 * IN_GUEST -> EXITING flip makes it see a new interrupt), vCPU 1 sleeps in WFI between interrupts
 * (only the wake-up does): both halves of kvm_vcpu_kick race with guest entry all the time. (A
 * sleeper also gives its core back, which keeps the test affordable on a loaded machine.) The VMM thread
 * injects most of them through KVM_IRQ_LINE and a share through irqfds (eventfd writes on the VMM
 * thread: the writer-thread fast path, with the injector as backstop).
 *
 * Accounting: an edge SPI re-asserted while still pending coalesces (spec §3.3), so counts are
 * made exact by credits. Each SPI has one injector (this thread), which asserts it again only once
 * the guest acknowledged the previous instance: an acknowledged edge is no longer pending, so every
 * assertion is a new instance and acknowledgements == injections, exactly, per SPI. Many SPIs are in
 * flight at once (more than the LRs of both vCPUs), so the ap_lists overflow, flushes sort, folds
 * and prunes run, and kicks race with guest entries all the time.
 *
 * A lost interrupt stalls its credit: the progress bound reports it (naming the SPIs owed). A
 * duplicate makes some SPI's acknowledgements overtake its injections, which is checked on every
 * poll. At the end the vCPU counters must agree (one EOI per acknowledgement, no spurious
 * acknowledgement) and no record, LR or ap_list may keep any state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventFd } from '../../src/eventfd/eventfd.js';
import { SINK, type SinkArgs } from '../../src/guest/builtins/irq-sink.js';
import { IRQ, LR, VCPU } from '../../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { unchecked } from '../../src/check/lockset/index.js';
import { VmTracker, buildV3, spiLine, startRun, waitFor, waitRam, within, type RunHandle } from '../helpers.js';
import type { Vm } from '../../src/index.js';

const NV = 2;
const TOTAL = 1_000_000;
/**
 * SPIs asserted through KVM_IRQ_LINE, then SPIs asserted through irqfds (one eventfd each): 16 in
 * flight, twice the LRs of both vCPUs, so the ap_lists overflow. More in flight only lengthens
 * every flush (each entry walks the whole ap_list under its lock) without more overlap.
 */
const LINE_SPIS = Array.from({ length: 12 }, (_, i) => 32 + i);
const IRQFD_SPIS = Array.from({ length: 4 }, (_, i) => 44 + i);
const SPIS = [...LINE_SPIS, ...IRQFD_SPIS];
/** No acknowledgement for this long means an interrupt was lost (a bound on progress, not on the run). */
/** The injector's pause (ms) after a pass that found no credit free. */
const BACKOFF_MS = 0.05;
const backoff = new Int32Array(new SharedArrayBuffer(4));
// A no-progress bound (a lost interrupt stalls the credits): sized, like concurrency.test.ts, for a
// loaded 2-core machine.
const STALL_MS = 15_000;
const TEST_MS = 240_000;

interface Storm {
  sent: Int32Array;
  polls: number;
}

/** The injector: keep one instance of every SPI in flight until TOTAL were injected. */
async function inject(vm: Vm, run: RunHandle, fds: EventFd[]): Promise<Storm> {
  const ram = vm.ram;
  const lines = LINE_SPIS.map(spiLine);
  const ackIdx = SPIS.map((s) => SINK.SPI_ACKS + s);
  const sent = new Int32Array(SPIS.length);
  let total = 0;
  let polls = 0;
  let acked = 0;
  let progress = Date.now();
  while (total < TOTAL) {
    let nowAcked = 0;
    let injected = 0;
    for (let i = 0; i < SPIS.length; i++) {
      const a = Atomics.load(ram, ackIdx[i]!);
      nowAcked += a;
      if (a > sent[i]!) throw new Error(`SPI ${SPIS[i]} acknowledged ${a} times after ${sent[i]} injections: a duplicate delivery`);
      if (a !== sent[i] || total === TOTAL) continue;
      sent[i]!++;
      total++;
      injected++;
      if (i < lines.length) vm.irqLine(lines[i]!, 1);
      else fds[i - lines.length]!.write(1n);
    }
    // Nothing to do until the guests acknowledge: give the core away for a moment instead of
    // spinning (a poll interval, not synchronisation; on a loaded machine a spinner is scheduled late).
    if (injected === 0) Atomics.wait(backoff, 0, 0, BACKOFF_MS);
    if (nowAcked !== acked) {
      acked = nowAcked;
      progress = Date.now();
    } else if (Date.now() - progress > STALL_MS) {
      throw new Error(`no acknowledgement for ${STALL_MS} ms after ${total} injections (lost interrupt?); owed: ${owed(vm, sent).join(', ')}`);
    }
    // Let the event loop run now and then (the run's failure arrives as a promise rejection).
    if ((++polls & 63) === 0) {
      if (run.error) throw run.error as Error;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  return { sent, polls };
}

function owed(vm: Vm, sent: Int32Array): string[] {
  return SPIS.flatMap((s, i) => {
    const a = Atomics.load(vm.ram, SINK.SPI_ACKS + s);
    return a === sent[i] ? [] : [`SPI ${s} (${sent[i]} injected, ${a} acknowledged)`];
  });
}

/** Records, LRs and ap_lists left with any state once every guest returned. */
function leftovers(vm: Vm): string[] {
  const h = vm.host;
  const m = unchecked(h.m);
  const bad: string[] = [];
  for (let v = 0; v < NV; v++) {
    const vb = vcpuOff(h.g, v);
    if (m[vb + VCPU.off.apHead] !== -1) bad.push(`vCPU ${v}: ap_list not empty (head record ${m[vb + VCPU.off.apHead]})`);
    if (m[vb + VCPU.off.usedLrs] !== 0) bad.push(`vCPU ${v}: used_lrs ${m[vb + VCPU.off.usedLrs]}`);
    for (let i = 0; i < vm.options.nrLr; i++) {
      const st = m[vb + VCPU.off.lr + i * LR.size + LR.off.state]!;
      if (st !== 0) bad.push(`vCPU ${v}: LR${i} state ${st} (INTID ${m[vb + VCPU.off.lr + i * LR.size + LR.off.intid]})`);
    }
  }
  for (const s of SPIS) {
    const b = irqOff(h.g, h.g.spiRecordBase + s - 32);
    if (m[b + IRQ.off.pendingLatch] || m[b + IRQ.off.active] || m[b + IRQ.off.vcpu] !== -1 || m[b + IRQ.off.onLr]) {
      bad.push(`SPI ${s}: latch ${m[b + IRQ.off.pendingLatch]} active ${m[b + IRQ.off.active]} on ap_list of ${m[b + IRQ.off.vcpu]} onLr ${m[b + IRQ.off.onLr]}`);
    }
  }
  return bad;
}

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

describe.each(['fine', 'global'] as const)("locking '%s'", (locking) => {
  it(`${TOTAL.toLocaleString('en')} edge SPIs (${LINE_SPIS.length} by KVM_IRQ_LINE, ${IRQFD_SPIS.length} by irqfd) on ${NV} vCPUs (one spinning, one in WFI): each acknowledged exactly once`, { timeout: TEST_MS }, async () => {
    const args = (id: number): SinkArgs => ({ wait: id === 0 ? 'spin' : 'wfi', spis: SPIS, latency: false });
    const { vm } = tracker.track(buildV3({ vcpus: NV, perVcpu: (id) => ({ guest: 'irq-sink', args: args(id) }), vm: { locking, lockdep: true, lockStats: 'off', ramBytes: 4 << 20 } }));
    const fds = IRQFD_SPIS.map((s) => {
      const fd = new EventFd();
      vm.irqfd({ fd, gsi: s - 32 });
      return fd;
    });
    const run = startRun(vm);
    await waitRam(vm, SINK.READY, 20_000, 'both vCPUs to be ready', run, (v) => v === NV);
    const { sent } = await inject(vm, run, fds);
    try {
      await waitFor(() => owed(vm, sent).length === 0, STALL_MS, 'the last interrupts to be acknowledged', run);
    } catch (e) {
      throw new Error(`${(e as Error).message}; owed: ${owed(vm, sent).join(', ')}`);
    }
    // DONE, then take every vCPU out of KVM_RUN once (a signal, not an interrupt, so that nothing
    // is left to count): the sleeper leaves WFI, resumes, looks at DONE and returns.
    Atomics.store(vm.ram, SINK.DONE, 1);
    for (const v of vm.vcpus) {
      await v.interrupt(20_000);
      v.resume();
    }
    const res = await within(run.promise, 20_000, 'the guests to return');

    // Exact, per SPI and in total: every injection acknowledged once.
    expect(sent.reduce((a, n) => a + n, 0)).toBe(TOTAL);
    for (const [i, s] of SPIS.entries()) expect(Atomics.load(vm.ram, SINK.SPI_ACKS + s), `SPI ${s}`).toBe(sent[i]);
    // Each guest's own count and the vCPU counters agree: one EOI per acknowledgement, no
    // spurious acknowledgement.
    const stats = vm.vcpus.map((v) => v.stats());
    expect(res.reduce((a, r) => a + (r.result as { acks: number }).acks, 0)).toBe(TOTAL);
    expect(stats.reduce((a, s) => a + s.acks, 0)).toBe(TOTAL);
    for (const [v, s] of stats.entries()) {
      expect(s.eois, `vCPU ${v}: EOIs == acknowledgements`).toBe(s.acks);
      expect(s.spuriousAcks, `vCPU ${v}: spurious acknowledgements`).toBe(0);
      // irq-sink routes SPIS[i] to vCPU i % NV and nothing retargets them: each vCPU took exactly
      // the interrupts routed to it.
      const routed = SPIS.reduce((a, _, i) => a + (i % NV === v ? sent[i]! : 0), 0);
      expect(s.acks, `vCPU ${v}: acknowledgements == injections of the SPIs routed to it`).toBe(routed);
    }
    // irqfds: every count consumed (by the fast path or the injector), none dropped.
    const irqfdSent = IRQFD_SPIS.reduce((a, _, k) => a + sent[LINE_SPIS.length + k]!, 0);
    const infos = vm.irqfds();
    expect(infos.reduce((a, i) => a + i.consumed, 0)).toBe(irqfdSent);
    expect(infos.reduce((a, i) => a + i.fastInjections + i.slowInjections, 0)).toBe(irqfdSent);
    expect(infos.reduce((a, i) => a + i.dropped, 0)).toBe(0);
    expect(leftovers(vm)).toEqual([]);
  });
});
