/**
 * lockstat workloads: which interrupt sources run against the guests, as a plan per vCPU count.
 * A workload is data (a plan), not code that runs in the threads: the lockstat runner
 * (lockstat/run.ts) owns the injectors, their credits and their timestamps, so that every
 * workload measures the same way. A user module (`--workload ./my.js`) exports the same shape:
 *
 *   export default {
 *     name: 'my-workload',
 *     description: 'what it stresses',
 *     plan(vcpus) { return { mainSpis: 4, devices: [{ edge: 2, level: 1 }], lpis: 0, sgi: true, churn: 0 }; },
 *   };
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface WorkloadPlan {
  /** Edge SPIs the main thread injects through KVM_IRQ_LINE, one in flight each. */
  mainSpis: number;
  /**
   * Device worker threads (they map the VM, so an eventfd write takes the irqfd fast path in the
   * device's own thread): `edge` irqfd SPIs and `level` SPIs on resampling irqfds each.
   */
  devices: { edge: number; level: number }[];
  /** LPIs the main thread signals through KVM_SIGNAL_MSI and the ITS, one in flight each. */
  lpis: number;
  /** Every vCPU keeps one SGI in flight to the next vCPU. */
  sgi: boolean;
  /** vCPU 0 retargets one SPI and disables/re-enables it every `churn` acknowledgements; 0 never. */
  churn: number;
}

export interface LockstatWorkload {
  name: string;
  description: string;
  plan(vcpus: number): WorkloadPlan;
}

const none: WorkloadPlan = { mainSpis: 0, devices: [], lpis: 0, sgi: false, churn: 0 };

export const BUILTIN_WORKLOADS: readonly LockstatWorkload[] = [
  {
    name: 'mixed',
    description: 'edge SPIs from the main thread and from 2 device workers through irqfd, level SPIs with resamplefd, SGIs between vCPUs, LPIs through the ITS, retargeting and enable/disable writes',
    plan: () => ({ mainSpis: 4, devices: [{ edge: 2, level: 1 }, { edge: 2, level: 1 }], lpis: 4, sgi: true, churn: 64 }),
  },
  { name: 'spi', description: 'edge SPIs from the main thread (KVM_IRQ_LINE)', plan: (v) => ({ ...none, mainSpis: Math.max(4, 2 * v) }) },
  { name: 'sgi', description: 'SGIs only: every vCPU keeps one in flight to the next', plan: () => ({ ...none, sgi: true }) },
  { name: 'irqfd', description: 'edge SPIs from 2 device workers through the irqfd fast path', plan: () => ({ ...none, devices: [{ edge: 4, level: 0 }, { edge: 4, level: 0 }] }) },
  { name: 'level', description: 'level SPIs from a device worker through irqfd + resamplefd', plan: () => ({ ...none, devices: [{ edge: 0, level: 4 }] }) },
  { name: 'lpi', description: 'LPIs through KVM_SIGNAL_MSI and the ITS', plan: (v) => ({ ...none, lpis: Math.max(4, 2 * v) }) },
];

export const BUILTIN_WORKLOAD_NAMES = BUILTIN_WORKLOADS.map((w) => w.name);

/** Limits every plan must respect (guest RAM layout, SPI and LPI ranges we wire). */
export const PLAN_LIMITS = { spis: 256, lpis: 256, devices: 8 } as const;

/** Check a plan from a user module; throws with the offending field. */
export function checkPlan(p: unknown, who: string): WorkloadPlan {
  const bad = (what: string): never => {
    throw new Error(`workload ${who}: plan(): ${what}`);
  };
  if (typeof p !== 'object' || p === null) return bad('must return an object');
  const o = p as Record<string, unknown>;
  const count = (k: string, max: number): number => {
    const v = o[k] ?? 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(`${k} must be a whole number in 0..${max}`);
    return v as number;
  };
  const devices = o.devices ?? [];
  if (!Array.isArray(devices) || devices.length > PLAN_LIMITS.devices) bad(`devices must be an array of at most ${PLAN_LIMITS.devices}`);
  const devs = (devices as unknown[]).map((d, i) => {
    if (typeof d !== 'object' || d === null) bad(`devices[${i}] must be { edge, level }`);
    const r = d as Record<string, unknown>;
    const e = r.edge ?? 0;
    const l = r.level ?? 0;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 0 || typeof l !== 'number' || !Number.isInteger(l) || l < 0) bad(`devices[${i}].edge/.level must be whole numbers`);
    return { edge: e as number, level: l as number };
  });
  const plan: WorkloadPlan = { mainSpis: count('mainSpis', PLAN_LIMITS.spis), devices: devs, lpis: count('lpis', PLAN_LIMITS.lpis), sgi: o.sgi === true, churn: count('churn', 1 << 20) };
  const spis = plan.mainSpis + devs.reduce((a, d) => a + d.edge + d.level, 0);
  if (spis > PLAN_LIMITS.spis) bad(`${spis} SPIs in all, at most ${PLAN_LIMITS.spis}`);
  if (spis + plan.lpis === 0 && !plan.sgi) bad('no interrupt source (mainSpis, devices, lpis or sgi)');
  if (plan.churn > 0 && spis === 0) bad('churn needs SPIs to retarget');
  return plan;
}

/** A built-in name or a module path exporting a LockstatWorkload (default export or `workload`). */
export async function loadWorkload(ref: string): Promise<LockstatWorkload> {
  const b = BUILTIN_WORKLOADS.find((w) => w.name === ref);
  if (b) return b;
  if (!/[\\/.]/.test(ref)) throw new Error(`unknown workload '${ref}' (built-ins: ${BUILTIN_WORKLOAD_NAMES.join(', ')}; or a module path)`);
  const url = ref.startsWith('file:') ? ref : pathToFileURL(isAbsolute(ref) ? ref : resolve(process.cwd(), ref)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`workload module ${ref}: ${(e as Error).message.split('\n')[0]}`);
  }
  const w = (mod.default ?? mod.workload) as Partial<LockstatWorkload> | undefined;
  if (!w || typeof w.plan !== 'function') throw new Error(`workload module ${ref} must export (default or 'workload') { name, description, plan(vcpus) }`);
  const name = typeof w.name === 'string' && w.name ? w.name : ref;
  const plan = w.plan.bind(w);
  return { name, description: typeof w.description === 'string' ? w.description : '', plan: (v) => checkPlan(plan(v), name) };
}
