/**
 * One stress run, in its steps (src/stress/run/): plan the configuration, build the VM with history
 * recording and the chosen scheduling, run the vCPUs (scenario guest) and the driver thread
 * (scenario driver) to the end or the bound, check what they left (history, structure,
 * accounting, audit), and report.
 */
import { fileURLToPath } from 'node:url';
import { createVm } from '../kvm/vm.js';
import { D } from '../vgic/host.js';
import { createHistory } from '../record/history.js';
import { EXTRA_THREAD_SLOTS } from '../shm/vm-memory.js';
import type { Finding } from './findings.js';
import { scenarioHash } from './schedule-file.js';
import { injectorSchedSlot } from './thread-config.js';
import { buildVm } from './run/build-vm.js';
import { checkRun } from './run/check-run.js';
import { planRecording, planRun, planSched } from './run/plan.js';
import { runReport } from './run/report.js';
import { runThreads, stopRunThreads, type RunThreads } from './run/run-threads.js';
import { isBuiltinScenario, loadScenario } from './run/scenario-module.js';
import type { StressRunOptions, StressRunReport } from './run/types.js';

export type { Strategy, StressMode, StressRunOptions, StressRunReport } from './run/types.js';
export { loadScenario, scenarioUrl } from './run/scenario-module.js';

export async function runStress(o: StressRunOptions): Promise<StressRunReport> {
  const t0 = performance.now();
  const { url, mod } = await loadScenario(o.scenario);
  const p = planRun(o, mod.info);
  const sched = planSched(o, p);
  const recording = planRecording(o, p);
  const maxVcpus = Math.max(p.vcpus, 1);
  const history = createHistory(1 + maxVcpus + EXTRA_THREAD_SLOTS, 1 << 17);
  const { nrLr, lrPolicy, locking } = p;
  const builtin = isBuiltinScenario(o.scenario);
  const vm = createVm({
    maxVcpus,
    nrLr,
    lrPolicy,
    locking,
    lockdep: true,
    checkAccess: o.checkAccess ?? true,
    bugs: o.bugs ?? [],
    stress: { history, sched, chaos: p.controlled ? null : { seed: p.seed, record: recording }, injectorSlot: injectorSchedSlot(p.vcpus) },
  });
  const findings: Finding[] = [];
  const threads: RunThreads = { driverWorker: null, watchdog: null, schedPoll: null };
  try {
    buildVm(vm, p, url, mod, sched);
    await runThreads(vm, p, o, url, sched, findings, threads);
    const { events, truncated } = checkRun(vm, p, mod, history, findings);
    const id = { scenario: mod.info.name, scenarioRef: builtin ? o.scenario : fileURLToPath(url), scenarioHash: scenarioHash(url, builtin) };
    return runReport(o, p, id, sched, recording, findings, events, truncated, performance.now() - t0, Atomics.load(vm.host.m, D.stopSeq));
  } finally {
    stopRunThreads(threads);
    await vm.destroy();
    if (threads.driverWorker) await threads.driverWorker.terminate();
  }
}
