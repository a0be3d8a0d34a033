/**
 * createVm's options, checked at the call that is wrong (KVM_CREATE_VM's argument): an unknown
 * key, a value of the wrong type or out of range is EINVAL naming the option, never a silent
 * default or a failure much later on another thread.
 */
import { kvmErr } from '../uapi/errno.js';
import { KVM_PHYS_SHIFT_DEFAULT } from '../uapi/kvm.js';
import { MAX_LRS } from '../shm/layouts.js';
import { BUG } from '../vgic/bugs.js';
import type { LockingMode, LrPolicy } from '../vgic/host.js';
import type { LockStatsMode } from '../sync/thread.js';
import type { StressThreadConfig } from '../stress/thread-config.js';

export interface VmOptions {
  /** Upper bound on vCPUs (memory is laid out for it). Default 8. */
  maxVcpus?: number;
  /** List registers per vCPU, 1-16. Default 4 (a common GICv3 implementation). */
  nrLr?: number;
  /** Guest RAM bytes, shared by all vCPUs. Default 1 MiB. */
  ramBytes?: number;
  /** Guest physical address size in bits (KVM_VM_TYPE_ARM_IPA_SIZE). Default 40, KVM's default. */
  ipaBits?: number;
  /** 'fine' (2016+ kernel) or 'global' (2014 kernel's single distributor lock). Default 'fine'. */
  locking?: LockingMode;
  /**
   * LR overflow handling: 'mainline' (default, the kernel since the 2025 rework) or 'classic'
   * (the ~6.1-6.6 algorithm, whose guests cannot nest deeper than the LR count).
   */
  lrPolicy?: LrPolicy;
  /** Lock-order checking (lockdep). Default: on when VGIC_EMU_LOCKDEP=1 (tests), else off. */
  lockdep?: boolean;
  /** Lock statistics: 'off', 'counts' (default), or 'timed' (adds wait/hold time). */
  lockStats?: LockStatsMode;
  /** Bug seeds to switch on (see BUG in vgic/bugs.ts). */
  bugs?: readonly string[];
  /** Stress runs: history recording and chaos/controlled scheduling for every thread. */
  stress?: StressThreadConfig;
  /**
   * irq bypass forwarding: when an irqfd shares its eventfd with a VFIO device's trigger, forward
   * the device's line to the irqfd's SPI automatically (the 2015 proposal). Default false, as in
   * the kernel, whose arm64 code never forwards SPIs.
   */
  irqBypass?: boolean;
  /**
   * Lockset checking: every access to the shared VM state is checked against the protection its
   * field declares (shm/layouts.ts, check/lockset); violations are stress findings and make
   * destroy() throw. Slow (a Proxy per access). Default: on when VGIC_EMU_CHECK_ACCESS=1 (tests).
   */
  checkAccess?: boolean;
}

export type ResolvedVmOptions = Required<Omit<VmOptions, 'bugs' | 'stress'>> & { bugs: readonly string[] };

const KEYS: readonly (keyof VmOptions)[] = ['maxVcpus', 'nrLr', 'ramBytes', 'ipaBits', 'locking', 'lrPolicy', 'lockdep', 'lockStats', 'bugs', 'stress', 'irqBypass', 'checkAccess'];

function int(o: VmOptions, k: keyof VmOptions, dflt: number, lo: number, hi: number, extra?: (v: number) => boolean, rule = `an integer ${lo}..${hi}`): number {
  const v = o[k] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi || (extra && !extra(v))) kvmErr('EINVAL', `createVm: ${k} must be ${rule}, got ${describe(v)}`);
  return v;
}

function oneOf<T extends string>(o: VmOptions, k: keyof VmOptions, dflt: T, allowed: readonly T[]): T {
  const v = o[k] ?? dflt;
  if (typeof v !== 'string' || !allowed.includes(v as T)) kvmErr('EINVAL', `createVm: ${k} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`);
  return v as T;
}

function bool(o: VmOptions, k: keyof VmOptions, dflt: boolean): boolean {
  const v = o[k] ?? dflt;
  if (typeof v !== 'boolean') kvmErr('EINVAL', `createVm: ${k} must be a boolean, got ${describe(v)}`);
  return v;
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

export function resolveVmOptions(o: unknown): ResolvedVmOptions & { stress: StressThreadConfig | null } {
  if (o === undefined) o = {};
  if (o === null || typeof o !== 'object' || Array.isArray(o)) kvmErr('EINVAL', `createVm: options must be an object, got ${describe(o)}`);
  const opts = o as VmOptions;
  for (const k of Object.keys(opts)) {
    if (!(KEYS as readonly string[]).includes(k)) kvmErr('EINVAL', `createVm: unknown option '${k}' (known: ${KEYS.join(', ')})`);
  }
  const bugs = opts.bugs ?? [];
  if (!Array.isArray(bugs) || bugs.some((b) => typeof b !== 'string')) kvmErr('EINVAL', `createVm: bugs must be an array of bug seed names, got ${describe(bugs)}`);
  for (const b of bugs) if (!Object.hasOwn(BUG, b)) kvmErr('EINVAL', `createVm: unknown bug seed '${b}' in bugs (known: ${Object.keys(BUG).join(', ')})`);
  if (opts.stress !== undefined && (opts.stress === null || typeof opts.stress !== 'object')) kvmErr('EINVAL', 'createVm: stress must be a stress thread configuration object');
  return {
    maxVcpus: int(opts, 'maxVcpus', 8, 1, 64),
    nrLr: int(opts, 'nrLr', 4, 1, MAX_LRS),
    ramBytes: int(opts, 'ramBytes', 1 << 20, 4096, 2 ** 30, (v) => v % 4096 === 0, 'a multiple of 4096, from 4096 to 1 GiB'),
    ipaBits: int(opts, 'ipaBits', KVM_PHYS_SHIFT_DEFAULT, 32, 52),
    locking: oneOf<LockingMode>(opts, 'locking', 'fine', ['fine', 'global']),
    lrPolicy: oneOf<LrPolicy>(opts, 'lrPolicy', 'mainline', ['mainline', 'classic']),
    lockdep: bool(opts, 'lockdep', process.env.VGIC_EMU_LOCKDEP === '1'),
    lockStats: oneOf<LockStatsMode>(opts, 'lockStats', 'counts', ['off', 'counts', 'timed']),
    bugs: [...bugs],
    irqBypass: bool(opts, 'irqBypass', false),
    checkAccess: bool(opts, 'checkAccess', process.env.VGIC_EMU_CHECK_ACCESS === '1'),
    stress: opts.stress ?? null,
  };
}
