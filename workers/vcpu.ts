/**
 * vCPU worker entry: one per vCPU. The data plane (LRs, ap_lists, kicks, injection) is the shared
 * memory it was given; the control plane (run, after-run statistics) is comlink over the worker's
 * port. `run` executes the guest synchronously on this thread, as KVM_RUN does.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { computeGeometry, vcpuOff, type VmBuffers } from '../src/shm/vm-memory.js';
import { makeHost, type SharedVmConfig, dw } from '../src/vgic/host.js';
import { VcpuRunner, VmStopped } from '../src/kvm/vcpu-runner.js';
import { EXIT, VCPU } from '../src/shm/layouts.js';
import { GuestCpu, type UserMmioHandler } from '../src/guest/guest-cpu.js';
import { defaultUserMmio } from '../src/kvm/user-mmio.js';
import { releaseAll, TeardownError } from '../src/sync/lock.js';
import { serializeError, type VcpuRunOutcome } from '../src/kvm/run-outcome.js';
import { installStressHooks, type StressThreadConfig } from '../src/stress/thread-config.js';
import type { ControlledThread } from '../src/sched/controlled.js';
import { FdCache } from '../src/kvm/fd-channel.js';
import { installVmWakeups } from '../src/kvm/irqfd-path.js';

interface VcpuWorkerData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  vcpu: number;
  stress: StressThreadConfig | null;
  /** Where the VMM posts irqfd eventfds (resamplefds are signalled from this thread). */
  fdPort: MessagePort;
}

const wd = workerData as VcpuWorkerData;
const g = computeGeometry(wd.cfg);
const h = makeHost(g, wd.cfg, wd.buffers, 1 + wd.vcpu, `vcpu${wd.vcpu}`, wd.vcpu, wd.stress?.history ?? null);
// irqfd resampling (the ack notifier at fold) and the eventfd fast paths of this thread.
installVmWakeups(h, new FdCache(wd.fdPort));

type GuestMain = (cpu: GuestCpu, args: unknown) => unknown;

async function loadGuest(url: string): Promise<GuestMain> {
  const mod = (await import(url)) as { default?: unknown };
  // A guest module's default export; a stress scenario module exports `guest` beside `driver`.
  const fn = typeof mod.default === 'function' ? mod.default : (mod as { guest?: unknown }).guest;
  if (typeof fn !== 'function') throw new Error(`guest module ${url.slice(0, 80)} has no default export (or 'guest') function`);
  return fn as GuestMain;
}

async function loadMmio(url: string | undefined): Promise<UserMmioHandler> {
  if (!url) return defaultUserMmio(wd.buffers.userMmio);
  const mod = (await import(url)) as { default?: UserMmioHandler };
  const hnd = mod.default;
  if (!hnd || typeof hnd.read !== 'function' || typeof hnd.write !== 'function') {
    throw new Error(`MMIO handler module ${url} must default-export { read(gpa, len, vcpu), write(gpa, len, value, vcpu) }`);
  }
  return hnd;
}

const api = {
  async run(guestUrl: string, args: unknown, mmioUrl?: string): Promise<VcpuRunOutcome> {
    let runner: VcpuRunner | null = null;
    let ct: ControlledThread | null = null;
    try {
      const guest = await loadGuest(guestUrl);
      const mmio = await loadMmio(mmioUrl);
      ct = installStressHooks(wd.stress, h, 1 + wd.vcpu);
      ct?.join();
      runner = new VcpuRunner(h, wd.vcpu);
      runner.kvmRunEnter();
      const cpu = new GuestCpu(runner, h.m[dw(h, 'onlineVcpus')]!, mmio);
      const result = guest(cpu, args);
      runner.exit(EXIT.system_event);
      runner.kvmRunReturn();
      return { ok: true, reason: 'shutdown', result };
    } catch (e) {
      // Whatever threw, leave no lock held for the other threads to trip over (vcpu->mutex
      // included: KVM_RUN has returned).
      runner?.abandon();
      releaseAll(h.t);
      if (e instanceof VmStopped || e instanceof TeardownError) return { ok: true, reason: 'stopped', result: undefined };
      // Errors name the vCPU by the id the VMM gave it (vcpu_id), as Vcpu.id and run results do.
      return { ok: false, error: serializeError(e, h.m[vcpuOff(g, wd.vcpu) + VCPU.off.vcpuId]!) };
    } finally {
      // Controlled mode: hand the baton on; nobody may wait for a thread that is gone.
      ct?.leave();
    }
  },
};

export type VcpuWorkerApi = typeof api;

Comlink.expose(api, nodeEndpoint(parentPort));
