/**
 * Stress driver worker: runs a scenario's `driver` (host-side injections) on its own thread, so
 * that it is a real concurrent participant (and a scheduled one in controlled mode).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { computeGeometry, type VmBuffers } from '../src/shm/vm-memory.js';
import { makeHost, type SharedVmConfig } from '../src/vgic/host.js';
import { releaseAll, TeardownError } from '../src/sync/lock.js';
import { serializeError, type SerializedError } from '../src/kvm/run-outcome.js';
import { DRIVER_SCHED_SLOT, installStressHooks, type StressThreadConfig } from '../src/stress/thread-config.js';
import { DriverCtx } from '../src/stress/driver-ctx.js';
import { deriveSeed, Prng } from '../src/sched/prng.js';
import { installVmWakeups } from '../src/kvm/irqfd-path.js';

interface DriverWorkerData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  slot: number;
  stress: StressThreadConfig | null;
  seed: number;
  waitBudget: number;
}

const wd = workerData as DriverWorkerData;
const h = makeHost(computeGeometry(wd.cfg), wd.cfg, wd.buffers, wd.slot, 'driver', -1, wd.stress?.history ?? null);
// Eventfd writes of the driver take KVM's irqfd fast path in this (scheduled) thread.
installVmWakeups(h, null);

export type DriverOutcome = { ok: true; result: unknown; stalls: string[] } | { ok: false; error: SerializedError; stalls: string[] };

const api = {
  async run(scenarioUrl: string, args: unknown): Promise<DriverOutcome> {
    const mod = (await import(scenarioUrl)) as { driver?: (d: DriverCtx, a: unknown) => unknown };
    if (typeof mod.driver !== 'function') throw new Error(`scenario ${scenarioUrl} exports no driver()`);
    const ctx = new DriverCtx(h, new Prng(deriveSeed(wd.seed >>> 0, 0xd21)), wd.stress?.sched != null, wd.waitBudget);
    const ct = installStressHooks(wd.stress, h, DRIVER_SCHED_SLOT);
    try {
      ct?.join();
      const result = mod.driver(ctx, args);
      return { ok: true, result, stalls: ctx.stalls };
    } catch (e) {
      releaseAll(h.t);
      if (e instanceof TeardownError) return { ok: true, result: undefined, stalls: [...ctx.stalls, 'driver stopped by teardown'] };
      return { ok: false, error: serializeError(e, -1), stalls: ctx.stalls };
    } finally {
      ct?.leave();
    }
  },
};

export type DriverWorkerApi = typeof api;

Comlink.expose(api, nodeEndpoint(parentPort));
