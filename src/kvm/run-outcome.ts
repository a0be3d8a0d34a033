/**
 * What KVM_RUN of one vCPU ended with, as it crosses from the worker to the main thread, and the
 * errors rebuilt from it: KvmError (errno), LockOrderError (lockdep report), GuestFault (the guest
 * program threw: vCPU id and the guest's stack).
 */
import { KvmError, type ErrnoName } from '../uapi/errno.js';
import { LockOrderError } from '../sync/lockdep.js';

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  errno?: ErrnoName;
  syscall?: string;
  report?: string;
  vcpu: number;
}

export type VcpuRunOutcome =
  | { ok: true; reason: 'shutdown' | 'stopped'; result: unknown }
  | { ok: false; error: SerializedError };

export class GuestFault extends Error {
  readonly vcpu: number;
  readonly guestStack: string;
  /** `vcpu` -1: a host thread that is no vCPU (the stress driver). */
  constructor(vcpu: number, message: string, guestStack: string) {
    const who = vcpu >= 0 ? `guest on vCPU ${vcpu}` : 'host thread (stress driver)';
    super(`${who} threw: ${message}`);
    this.name = 'GuestFault';
    this.vcpu = vcpu;
    this.guestStack = guestStack;
    this.stack = `${this.name}: ${this.message}\n--- ${vcpu >= 0 ? `guest stack (vCPU ${vcpu})` : 'driver stack'} ---\n${guestStack}`;
  }
}

export function serializeError(e: unknown, vcpu: number): SerializedError {
  if (e instanceof Error) {
    const out: SerializedError = { name: e.name, message: e.message, stack: e.stack ?? '', vcpu };
    if (e instanceof KvmError) {
      out.errno = e.code;
      out.syscall = e.syscall;
    }
    if (e instanceof LockOrderError) out.report = e.report;
    return out;
  }
  return { name: 'Error', message: String(e), stack: '', vcpu };
}

/** Rebuild the error on the main thread; every kind carries the vCPU id. */
export function reviveRunError(s: SerializedError): Error & { vcpu: number } {
  if (s.errno) {
    const idx = s.message.indexOf(': ');
    const e = new KvmError(s.errno, idx >= 0 ? s.message.slice(idx + 2) : undefined, s.syscall) as KvmError & { vcpu: number };
    e.vcpu = s.vcpu;
    return e;
  }
  if (s.report) {
    const e = new LockOrderError(`[vCPU ${s.vcpu}]\n${s.report}`) as LockOrderError & { vcpu: number };
    e.vcpu = s.vcpu;
    return e;
  }
  return new GuestFault(s.vcpu, s.message, s.stack ?? '');
}
