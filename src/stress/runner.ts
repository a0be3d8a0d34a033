/**
 * One stress run: build the VM with history recording and the chosen scheduling, start the vCPUs
 * (scenario guest) and the driver thread (scenario driver), bound everything, then check: the
 * scheduler's verdict (deadlock, livelock), the watchdog's (chaos mode), faults (lockdep, broken
 * invariants), the driver's stalls, the scenario's accounting, the lifecycle checker on the
 * history, and the structure of every ap_list.
 */
import { fileURLToPath } from 'node:url';
import { scenarioHash } from './schedule-file.js';
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { createVm } from '../kvm/vm.js';
import { distPath } from '../kvm/worker-path.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_V2,
  KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../uapi/kvm.js';
import { createHistory, readHistory } from '../check/history.js';
import { EventKind, type HistoryEvent } from '../check/events.js';
import { checkHistory, formatViolation } from '../check/checker.js';
import { vmStructureProblems } from '../check/invariants.js';
import { quiescenceAudit } from '../check/audits.js';
import { Watchdog, waitForGraph } from '../check/watchdog.js';
import { createSchedBuffer, describeSched, FAIL_BUDGET, FAIL_DEADLOCK, readSchedule, SCHED, STRATEGY_PCT, STRATEGY_RANDOM, STRATEGY_REPLAY, type Switch } from '../sched/controlled.js';
import { EXIT_REASONS, IRQ, LPI_BASE, VCPU, VCPU_COUNTERS } from '../shm/layouts.js';
import { EXTRA_THREAD_SLOTS, irqOff, vcpuOff } from '../shm/vm-memory.js';
import { D } from '../vgic/host.js';
import { irqRecord } from '../vgic/irq.js';
import { LockOrderError } from '../sync/lockdep.js';
import { takeAccessFindings } from '../check/lockset/index.js';
import { reviveRunError } from '../kvm/run-outcome.js';
import type { DriverOutcome, DriverWorkerApi } from '../../workers/driver.js';
import type { Finding } from './findings.js';
import { historyHash, scheduleHash } from './hashing.js';
import type { ScenarioArgs, ScenarioModule } from './scenario.js';
import { BUILTIN_SCENARIOS } from './scenarios/index.js';

export type StressMode = 'chaos' | 'controlled';
export type Strategy = 'random' | 'pct';

export interface StressRunOptions {
  /** Built-in scenario name or a module path. */
  scenario: string;
  seed: number;
  mode: StressMode;
  strategy?: Strategy;
  /** PCT depth (default 3). */
  depth?: number;
  /** Random-walk switch probability per schedule point (default 0.05). */
  p?: number;
  vcpus?: number;
  iterations?: number;
  spis?: number;
  gic?: 'v2' | 'v3';
  nrLr?: number;
  /** LR overflow handling (createVm lrPolicy); default 'mainline'. */
  lrPolicy?: 'mainline' | 'classic';
  locking?: 'fine' | 'global';
  bugs?: readonly string[];
  /** Controlled mode: replay these switches instead of the strategy. */
  replay?: readonly Switch[];
  /** Overall bound on the run (ms). Default 30000. */
  timeoutMs?: number;
  /** Chaos mode: how long a liveness condition must persist (ms). Default 1000. */
  watchdogMs?: number;
  /** Keep the merged history in the report. */
  keepHistory?: boolean;
}

export interface StressRunReport {
  /** The scenario's own name (info.name). */
  scenario: string;
  /** How to name it again: a built-in's name, or the module's absolute path (repro lines use it). */
  scenarioRef: string;
  /** sha256 of a user module's text, null for a built-in. */
  scenarioHash: string | null;
  nrLr: number;
  lrPolicy: 'mainline' | 'classic';
  locking: 'fine' | 'global';
  depth: number;
  seed: number;
  mode: StressMode;
  strategy: Strategy | 'replay' | null;
  bugs: readonly string[];
  ok: boolean;
  findings: Finding[];
  durationMs: number;
  events: number;
  truncated: boolean;
  historyHash: string;
  schedule: { steps: number; preemptions: number; switches: Switch[]; hash: string } | null;
  /** A replay that could not follow its recorded schedule: the first step where it left it. */
  divergedAt: number | null;
  history?: HistoryEvent[];
  args: ScenarioArgs;
  vcpus: number;
  gic: 'v2' | 'v3';
}

export function scenarioUrl(name: string): string {
  if ((BUILTIN_SCENARIOS as readonly string[]).includes(name)) return pathToFileURL(distPath(`src/stress/scenarios/${name}.js`)).href;
  const p = isAbsolute(name) ? name : resolve(process.cwd(), name);
  if (!existsSync(p)) throw new Error(`unknown scenario '${name}' (built-ins: ${BUILTIN_SCENARIOS.join(', ')})`);
  return pathToFileURL(p).href;
}

export async function loadScenario(name: string): Promise<{ url: string; mod: ScenarioModule }> {
  const url = scenarioUrl(name);
  const mod = (await import(url)) as ScenarioModule;
  if (!mod.info || typeof mod.guest !== 'function' || typeof mod.driver !== 'function') {
    throw new Error(`scenario module ${name} must export info, guest() and driver()`);
  }
  return { url, mod };
}

const timeout = (ms: number): { p: Promise<'timeout'>; cancel: () => void } => {
  let t: NodeJS.Timeout | undefined;
  const p = new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)));
  return { p, cancel: () => clearTimeout(t) };
};

function classifyError(e: unknown): Finding {
  const err = e as Error & { vcpu?: number; report?: string };
  const where = err.vcpu !== undefined && err.vcpu >= 0 ? ` on vCPU ${err.vcpu}` : '';
  if (e instanceof LockOrderError) return { kind: 'lock-order', message: `lock order violation${where}`, details: err.report };
  if (/invariant violated: bounded delivery/.test(err.message)) return { kind: 'bounded-delivery', message: `${err.message}${where}`, details: err.stack };
  if (/invariant violated/.test(err.message)) return { kind: 'invariant', message: `${err.message}${where}`, details: err.stack };
  return { kind: 'fault', message: `${err.name}: ${err.message}${where}`, details: err.stack };
}

export async function runStress(o: StressRunOptions): Promise<StressRunReport> {
  const t0 = performance.now();
  const { url, mod } = await loadScenario(o.scenario);
  const info = mod.info;
  const vcpus = o.vcpus ?? info.vcpus ?? 2;
  const gic = o.gic ?? info.gic ?? 'v3';
  const nSpis = o.spis ?? info.spis ?? 4;
  const args: ScenarioArgs = {
    iterations: o.iterations ?? info.iterations ?? 100,
    spis: Array.from({ length: nSpis }, (_, i) => 32 + i),
    seed: o.seed >>> 0,
  };
  const controlled = o.mode === 'controlled';
  const strategy = controlled ? (o.replay ? 'replay' : (o.strategy ?? 'random')) : null;
  const sched = controlled
    ? createSchedBuffer({
        seed: o.seed >>> 0,
        threads: 1 + vcpus,
        strategy: o.replay ? STRATEGY_REPLAY : strategy === 'pct' ? STRATEGY_PCT : STRATEGY_RANDOM,
        p: o.p,
        depth: o.depth,
        replay: o.replay,
      })
    : null;
  const maxVcpus = Math.max(vcpus, 1);
  const history = createHistory(1 + maxVcpus + EXTRA_THREAD_SLOTS, 1 << 17);
  const nrLr = o.nrLr ?? info.nrLr ?? 4;
  const lrPolicy = o.lrPolicy ?? 'mainline';
  const locking = o.locking ?? 'fine';
  const builtin = (BUILTIN_SCENARIOS as readonly string[]).includes(o.scenario);
  const vm = createVm({
    maxVcpus,
    nrLr,
    lrPolicy,
    locking,
    lockdep: true,
    checkAccess: true,
    bugs: o.bugs ?? [],
    stress: { history, sched, chaos: controlled ? null : { seed: o.seed >>> 0 } },
  });
  const findings: Finding[] = [];
  const h = vm.host;
  let driverWorker: Worker | null = null;
  let watchdog: Watchdog | null = null;
  let schedPoll: NodeJS.Timeout | null = null;
  try {
    for (let i = 0; i < vcpus; i++) vm.createVcpu(i, { guest: url, args });
    const dev = vm.createDevice(gic === 'v3' ? KVM_DEV_TYPE_ARM_VGIC_V3 : KVM_DEV_TYPE_ARM_VGIC_V2);
    dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, gic === 'v3' ? KVM_VGIC_V3_ADDR_TYPE_DIST : KVM_VGIC_V2_ADDR_TYPE_DIST, 0x08000000n);
    if (gic === 'v3') dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
    else dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, 0x08010000n);
    mod.setup?.(vm, args, 'before-init');
    dev.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    mod.setup?.(vm, args, 'after-init');

    const ti = vm.threadInit();
    driverWorker = new Worker(distPath('workers/driver.js'), {
      workerData: { ...ti, slot: 1 + maxVcpus, seed: o.seed >>> 0, waitBudget: controlled ? 50_000 : Math.min(5000, (o.timeoutMs ?? 30000) / 3) },
    });
    const driverGone = new Promise<DriverOutcome>((res) => {
      driverWorker!.once('error', (e) => res({ ok: false, error: { name: 'Error', message: `driver worker crashed: ${e.message}`, vcpu: -1 }, stalls: [] }));
      driverWorker!.once('exit', () => res({ ok: false, error: { name: 'Error', message: 'driver worker exited', vcpu: -1 }, stalls: [] }));
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
      watchdog = new Watchdog(h.m, vm.geometry, (f) => {
        findings.push({ kind: f.kind === 'wfi-lost-wakeup' ? 'lost-wakeup' : f.kind === 'stuck-on-lock' ? 'deadlock' : f.kind, message: f.message, details: f.waitFor });
        vm.stopAll();
      }, { boundMs: o.watchdogMs ?? 1000 });
      watchdog.start();
    } else {
      const s = new Int32Array(sched!);
      schedPoll = setInterval(() => {
        if (s[SCHED.off.failure] !== 0) {
          clearInterval(schedPoll!);
          schedPoll = null;
          // Snapshot who was blocked on what before the stop changes it.
          const graph = waitForGraph(h.m, vm.geometry) + '\n' + vcpuStates(h.m, vm.geometry, vcpus) + '\n' + describeSched(sched!);
          const f = s[SCHED.off.failure];
          if (f === FAIL_DEADLOCK) findings.push({ kind: classifyDeadlock(h.m, vm.geometry, vcpus), message: `no thread can run at step ${s[SCHED.off.failStep]}: every live thread is blocked`, details: graph });
          else if (f === FAIL_BUDGET) findings.push({ kind: classifyLivelock(h.m, vm.geometry, vcpus), message: `step budget exhausted at step ${s[SCHED.off.failStep]}`, details: graph });
          vm.stopAll();
        }
      }, 10);
      schedPoll.unref();
    }

    const bound = timeout(o.timeoutMs ?? 30000);
    const both = Promise.all([runP, driverP]);
    const first = await Promise.race([both, bound.p]);
    bound.cancel();
    if (first === 'timeout') {
      findings.push({ kind: 'timeout', message: `the run did not finish within ${o.timeoutMs ?? 30000} ms`, details: waitForGraph(h.m, vm.geometry) + '\n' + vcpuStates(h.m, vm.geometry, vcpus) });
      vm.stopAll();
      if (sched) new Int32Array(sched)[SCHED.off.turn] = -2;
      await Promise.race([both, timeout(3000).p]);
    }
    watchdog?.stop();
    if (schedPoll) clearInterval(schedPoll);
    // The scheduler may have failed after the last poll.
    if (controlled && schedPoll === null && findings.length === 0) {
      /* already reported */
    }
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
      const s = new Int32Array(sched!);
      if (s[SCHED.off.failure] !== 0 && !findings.some((f) => f.kind === 'deadlock' || f.kind === 'livelock' || f.kind === 'lost-wakeup' || f.kind === 'lost-kick')) {
        findings.push({ kind: s[SCHED.off.failure] === FAIL_DEADLOCK ? 'deadlock' : 'livelock', message: `controlled scheduler failure ${s[SCHED.off.failure]} at step ${s[SCHED.off.failStep]}` });
      }
    }

    const lockset = takeAccessFindings(h);
    // Quiescent: record the end state, then check the history.
    const w = h.hist!;
    w.record(EventKind.QUIESCE, -1, -1, 0, 0);
    for (const sp of args.spis) {
      const r = irqRecord(h, -1, sp);
      if (r < 0) continue;
      const b = irqOff(vm.geometry, r);
      w.record(EventKind.LEVEL_END, sp, -1, h.m[b + IRQ.off.lineLevel]!, h.m[b + IRQ.off.enabled]!);
    }
    const { events, truncated } = readHistory(history);
    // A run cut short (timeout, scheduler failure, fault) is not quiescent: its "lost" verdicts
    // would only repeat the finding that cut it short.
    const cutShort = findings.length > 0;
    findings.push(...lockset); // a lockset report does not cut the run short: its other checks still hold
    for (const v of checkHistory(events, { gicVersion: gic === 'v3' ? 3 : 2, resampleSpis: info.resample ? args.spis : [], discardable: info.discardsLpis ? (i) => i >= LPI_BASE : undefined })) {
      if (cutShort && (v.kind === 'lost' || v.kind === 'level-not-represented')) continue;
      findings.push({ kind: v.kind, message: v.message, details: formatViolation(v) });
    }
    for (const p of vmStructureProblems(h.m, vm.geometry, vcpus)) findings.push({ kind: 'invariant', message: p });
    if (!cutShort) for (const msg of mod.check?.(vm.ram, args) ?? []) findings.push({ kind: 'accounting', message: msg });
    // Every thread has stopped: the state must be at rest (no held lock, nothing in flight, LPI
    // refcounts equal to the references that exist). A run cut short may have left a thread
    // stopped mid-section (a fault, a teardown): its audit would only echo that finding.
    if (!cutShort) for (const p of quiescenceAudit(h.m, vm.geometry)) findings.push({ kind: 'audit', message: p });

    const sch = sched ? readSchedule(sched) : null;
    return {
      scenario: info.name,
      scenarioRef: builtin ? o.scenario : fileURLToPath(url),
      scenarioHash: scenarioHash(url, builtin),
      nrLr,
      lrPolicy,
      locking,
      depth: o.depth ?? 3,
      seed: o.seed >>> 0,
      mode: o.mode,
      strategy,
      bugs: o.bugs ?? [],
      ok: findings.length === 0,
      findings,
      durationMs: performance.now() - t0,
      events: events.length,
      truncated,
      historyHash: historyHash(events),
      schedule: sch ? { steps: sch.steps, preemptions: sch.preemptions, switches: sch.switches, hash: scheduleHash(sch.switches) } : null,
      divergedAt: o.replay && sch ? sch.divergedAt : null,
      history: o.keepHistory ? events : undefined,
      args,
      vcpus,
      gic,
    };
  } finally {
    watchdog?.stop();
    if (schedPoll) clearInterval(schedPoll);
    await vm.destroy();
    if (driverWorker) await driverWorker.terminate();
  }
}

const MODES = ['OUTSIDE', 'IN_GUEST', 'EXITING'];

function vcpuStates(m: Int32Array, g: import('../shm/vm-memory.js').VmGeometry, n: number): string {
  const lines: string[] = ['vCPU states:'];
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    const list: number[] = [];
    for (let r = m[vb + VCPU.off.apHead]!, k = 0; r >= 0 && k < 64; k++) {
      list.push(m[irqOff(g, r) + IRQ.off.intid]!);
      r = m[irqOff(g, r) + IRQ.off.next]!;
    }
    const ctr = VCPU_COUNTERS.map((c, i) => `${c}=${m[vb + VCPU.off.counters + i]}`).join(' ');
    const ex = EXIT_REASONS.map((c, i) => `${c}=${m[vb + VCPU.off.exits + i]}`).join(' ');
    lines.push(`  vcpu${v}: ${ctr}; exits ${ex}`);
    lines.push(`  vcpu${v}: mode=${MODES[m[vb + VCPU.off.mode]!]} requests=0x${m[vb + VCPU.off.requests]!.toString(16)} blocked=${m[vb + VCPU.off.blocked]} wake=${m[vb + VCPU.off.wake]} ap_list=[${list.join(',')}] usedLrs=${m[vb + VCPU.off.usedLrs]}`);
  }
  return lines.join('\n');
}

/** Everyone blocked: a vCPU asleep in WFI with a deliverable IRQ queued is a lost wake-up. */
function classifyDeadlock(m: Int32Array, g: import('../shm/vm-memory.js').VmGeometry, n: number): Finding['kind'] {
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    if (m[vb + VCPU.off.blocked] && m[vb + VCPU.off.apHead]! >= 0 && m[D.enabled]) return 'lost-wakeup';
  }
  return 'deadlock';
}

/** Out of steps with a vCPU in guest mode holding an unserved request: the kick was lost. */
function classifyLivelock(m: Int32Array, g: import('../shm/vm-memory.js').VmGeometry, n: number): Finding['kind'] {
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    if (m[vb + VCPU.off.mode] === 1 && m[vb + VCPU.off.requests] !== 0) return 'lost-kick';
  }
  return 'livelock';
}
