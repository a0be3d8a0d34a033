/**
 * Step 2 of a stress run: start the vCPUs (scenario guest) and the driver thread (scenario driver),
 * bound everything, and collect what the run itself says: the scheduler's verdict (deadlock,
 * livelock), the watchdog's (chaos mode), faults on either side, and the driver's stalls.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Vm } from '../../kvm/vm.js';
import { distPath } from '../../kvm/worker-path.js';
import { reviveRunError } from '../../kvm/run-outcome.js';
import { Watchdog, waitForGraph } from '../../check/watchdog.js';
import { describeSched, FAIL_BUDGET, FAIL_DEADLOCK, LOST_NOTIFY_POINTS, readLostWakeup, SCHED, type LostWakeup } from '../../sched/controlled.js';
import type { DriverOutcome, DriverWorkerApi } from '../../../workers/driver.js';
import type { Finding } from '../findings.js';
import { schedThreadNames } from '../thread-config.js';
import { unchecked } from '../../check/lockset/view.js';
import { vcpuOff } from '../../shm/vm-memory.js';
import { CTR, VCPU } from '../../shm/layouts.js';
import { classifyDeadlock, classifyError, classifyLivelock, vcpuStates, vmWordName } from './diagnostics.js';
import type { RunPlan } from './plan.js';
import type { StressRunOptions } from './types.js';

/** What the run started and the caller must stop when it is done (after vm.destroy()). */
export interface RunThreads {
  driverWorker: Worker | null;
  watchdog: Watchdog | null;
  schedPoll: NodeJS.Timeout | null;
}

export function stopRunThreads(t: RunThreads): void {
  t.watchdog?.stop();
  if (t.schedPoll) clearInterval(t.schedPoll);
}

const timeout = (ms: number): { p: Promise<'timeout'>; cancel: () => void } => {
  let t: NodeJS.Timeout | undefined;
  const p = new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)));
  return { p, cancel: () => clearTimeout(t) };
};

/** Run to the end (or the bound); push what the run found into `findings`. */
export async function runThreads(vm: Vm, p: RunPlan, o: StressRunOptions, url: string, sched: SharedArrayBuffer | null, findings: Finding[], t: RunThreads): Promise<void> {
  const h = vm.host;
  const { vcpus, controlled, args } = p;
  const ti = vm.threadInit();
  const driverWorker = new Worker(distPath('workers/driver.js'), {
    workerData: { ...ti, slot: 1 + Math.max(vcpus, 1), seed: p.seed, waitBudget: controlled ? 50_000 : Math.min(5000, (o.timeoutMs ?? 30000) / 3) },
  });
  t.driverWorker = driverWorker;
  const driverGone = new Promise<DriverOutcome>((res) => {
    driverWorker.once('error', (e) => res({ ok: false, error: { name: 'Error', message: `driver worker crashed: ${e.message}`, vcpu: -1 }, stalls: [] }));
    driverWorker.once('exit', () => res({ ok: false, error: { name: 'Error', message: 'driver worker exited', vcpu: -1 }, stalls: [] }));
  });
  const api = Comlink.wrap<DriverWorkerApi>(nodeEndpoint(driverWorker));

  // A fault on either side ends the run at once: the other threads are stopped, not left to
  // spin until a budget runs out.
  const runP = vm.run().then(
    () => null,
    (e: unknown) => {
      vm.stopAll();
      return e;
    },
  );
  const driverP = Promise.race([api.run(url, args), driverGone]).then((d) => {
    if (!d.ok) vm.stopAll();
    return d;
  });

  if (!controlled) {
    t.watchdog = new Watchdog(h.m, vm.geometry, (f) => {
      findings.push({ kind: f.kind === 'wfi-lost-wakeup' ? 'lost-wakeup' : f.kind === 'stuck-on-lock' ? 'deadlock' : f.kind, message: f.message, details: f.waitFor });
      vm.stopAll();
    }, { boundMs: o.watchdogMs ?? 1000 });
    t.watchdog.start();
  } else {
    const s = new Int32Array(sched!);
    // The scheduler declares its failure the moment it finds it (no thread can run: deadlock; the
    // step budget spent: livelock) and free-runs every thread; this turns it into a finding and
    // stops the VM within one poll.
    t.schedPoll = setInterval(() => {
      if (s[SCHED.off.failure] !== 0) {
        clearInterval(t.schedPoll!);
        t.schedPoll = null;
        // Snapshot who was blocked on what before the stop changes it.
        const graph = waitForGraph(h.m, vm.geometry) + '\n' + vcpuStates(h.m, vm.geometry, vcpus) + '\n' + describeSched(sched!, schedThreadNames(vcpus));
        const f = s[SCHED.off.failure];
        if (f === FAIL_DEADLOCK) findings.push({ kind: classifyDeadlock(h.m, vm.geometry, vcpus), message: `no thread can run at step ${s[SCHED.off.failStep]}: every live thread is blocked`, details: graph });
        else if (f === FAIL_BUDGET) findings.push({ kind: classifyLivelock(h.m, vm.geometry, vcpus), message: `step budget exhausted at step ${s[SCHED.off.failStep]}`, details: graph });
        vm.stopAll();
      }
    }, 10);
    t.schedPoll.unref();
  }

  const limitMs = o.timeoutMs ?? 30000;
  const both = Promise.all([runP, driverP]);
  // The wall clock is a safety net, not a detector: in controlled mode the scheduler reports a
  // deadlock (nobody can run) or a livelock (the step budget spent), in chaos mode the watchdog
  // reports stuck waits. So while the run still makes progress (schedule steps; in chaos mode,
  // guest entries), a run that is merely slow gets more time, up to 4x the limit: on a loaded
  // machine gicd-sweep-v2 once took over 30 s under a full test suite and was reported as a
  // timeout, a false alarm (alone: 22 s, clean).
  const schedWords = controlled ? new Int32Array(sched!) : null;
  const raw = unchecked(h.m); // a progress sample, not the model's access
  const progress = (): number => {
    if (schedWords) return Atomics.load(schedWords, SCHED.off.step);
    let n = 0;
    for (let v = 0; v < vcpus; v++) n += raw[vcpuOff(vm.geometry, v) + VCPU.off.counters + CTR.entries]!;
    return n;
  };
  let first: unknown;
  for (let waited = 0, last = progress(); ; ) {
    const bound = timeout(limitMs);
    first = await Promise.race([both, bound.p]);
    bound.cancel();
    waited += limitMs;
    if (first !== 'timeout' || waited >= 4 * limitMs) break;
    const now = progress();
    if (now === last) break;
    last = now;
  }
  if (first === 'timeout') {
    findings.push({ kind: 'timeout', message: `the run did not finish within ${limitMs} ms (and then made no progress, or 4x that passed)`, details: waitForGraph(h.m, vm.geometry) + '\n' + vcpuStates(h.m, vm.geometry, vcpus) });
    vm.stopAll();
    if (sched) new Int32Array(sched)[SCHED.off.turn] = -2;
    await Promise.race([both, timeout(3000).p]);
  }
  stopRunThreads(t);
  const settled = await Promise.race([both, timeout(1).p]);
  if (settled !== 'timeout') {
    const [runErr, drv] = settled;
    if (runErr) findings.push(classifyError(runErr));
    if (!drv.ok) findings.push(classifyError(reviveRunError(drv.error)));
    for (const st of drv.stalls) {
      const kind = /lost wake-up/.test(st) ? 'lost-wakeup' : /lost kick/.test(st) ? 'lost-kick' : 'stall';
      findings.push({ kind, message: st });
    }
  }
  if (controlled) {
    // A lost wake-up does not stop the run (controlled.ts says why): report it now.
    const lost = readLostWakeup(sched!);
    if (lost) findings.push({ kind: 'lost-wakeup', message: lostWakeupMessage(lost, vm.geometry, schedThreadNames(vcpus)) });
    // The scheduler may have failed after the last poll.
    const s = new Int32Array(sched!);
    if (s[SCHED.off.failure] !== 0 && !findings.some((f) => f.kind === 'deadlock' || f.kind === 'livelock' || f.kind === 'lost-wakeup' || f.kind === 'lost-kick')) {
      findings.push({ kind: s[SCHED.off.failure] === FAIL_DEADLOCK ? 'deadlock' : 'livelock', message: `controlled scheduler failure ${s[SCHED.off.failure]} at step ${s[SCHED.off.failStep]}` });
    }
  }
}

/** The scheduler's lost wake-up: the word, the waiter, the writer. */
function lostWakeupMessage(l: LostWakeup, g: Parameters<typeof vmWordName>[0], names: readonly string[]): string {
  const who = (t: number) => names[t] ?? `thread ${t}`;
  const more = l.count > 1 ? ` (${l.count} lost wake-ups in this run; the first:)` : '';
  return `lost wake-up${more} at schedule step ${l.step}: ${who(l.waiter)} was parked on ${vmWordName(g, l.word)} (word ${l.word}, waiting while it held ${l.val}); ${l.writer >= 0 ? who(l.writer) : 'a thread outside the schedule'} changed it by step ${l.changedAt} and passed ${LOST_NOTIFY_POINTS} more schedule points (or nobody else could run) without an Atomics.notify: a plain run's waiter sleeps on until its park slice expires`;
}
