/**
 * How a vCPU names its guest program: a built-in name, a module path/URL, or inline source.
 * Inline source is an ES module text (or use `guestFromFunction`): it is imported in the vCPU
 * worker from a data: URL, so it can capture nothing from the caller's scope.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distPath } from './worker-path.js';
import { BUILTIN_GUESTS } from '../guest/builtins/index.js';
import type { GuestCpu } from '../guest/guest-cpu.js';
import { kvmErr } from '../uapi/errno.js';
import { describe } from './vm-options.js';

export type GuestRef = string | { readonly source: string };

/**
 * Wrap a self-contained function `(cpu, args) => result` as an inline guest module. `cpu` is the
 * vCPU's GuestCpu and `args` the vCPU's `args` option (structured-cloned), typed `A`: give it
 * (`guestFromFunction<{ spi: number }>(…)` or annotate the parameter) to have it checked; an
 * unannotated arrow compiles with `args: any`, as the value comes from another thread.
 * The function's text is what runs: it can capture nothing from the caller's scope.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function guestFromFunction<A = any>(fn: (cpu: GuestCpu, args: A) => unknown): { source: string } {
  return { source: `export default ${fn.toString()};\n//# sourceURL=inline-guest.js\n` };
}

/**
 * Resolve to a URL string the worker can import(). A reference that cannot name a guest is
 * EINVAL here, at KVM_CREATE_VCPU, not a failure at the first run.
 */
export function resolveGuestUrl(ref: GuestRef): string {
  if (typeof ref === 'object' && ref !== null) {
    if (typeof ref.source !== 'string') kvmErr('EINVAL', 'createVcpu: guest { source } must be a string of ES module text');
    return `data:text/javascript;base64,${Buffer.from(ref.source).toString('base64')}`;
  }
  if (typeof ref !== 'string' || ref === '') kvmErr('EINVAL', `createVcpu: guest must be a built-in name (${BUILTIN_GUESTS.join(', ')}), a module path or { source }, got ${describe(ref)}`);
  if ((BUILTIN_GUESTS as readonly string[]).includes(ref)) return pathToFileURL(distPath(`src/guest/builtins/${ref}.js`)).href;
  if (ref.startsWith('file:') || ref.startsWith('data:')) return ref;
  const p = isAbsolute(ref) ? ref : resolve(process.cwd(), ref);
  if (!existsSync(p)) kvmErr('EINVAL', `createVcpu: guest '${ref}' is neither a built-in (${BUILTIN_GUESTS.join(', ')}) nor an existing module file`);
  return pathToFileURL(p).href;
}

/** A VMM module (an MMIO handler) as a URL the vCPU worker can import; EINVAL if it does not exist. */
export function resolveModuleUrl(ref: unknown, what: string): string {
  if (typeof ref !== 'string' || ref === '') kvmErr('EINVAL', `createVcpu: ${what} must be a module path or file: URL, got ${describe(ref)}`);
  if (ref.startsWith('file:') || ref.startsWith('data:')) return ref;
  const p = isAbsolute(ref) ? ref : resolve(process.cwd(), ref);
  if (!existsSync(p)) kvmErr('EINVAL', `createVcpu: ${what} '${ref}' is not an existing module file`);
  return pathToFileURL(p).href;
}

const VCPU_OPTION_KEYS = ['guest', 'args', 'mmioHandler'];

/** createVcpu's options, checked before anything is created (EINVAL naming the option). */
export function checkVcpuOptions(opts: unknown): void {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) kvmErr('EINVAL', `createVcpu: options must be an object, got ${describe(opts)}`);
  for (const k of Object.keys(opts)) if (!VCPU_OPTION_KEYS.includes(k)) kvmErr('EINVAL', `createVcpu: unknown option '${k}' (known: ${VCPU_OPTION_KEYS.join(', ')})`);
  const o = opts as { guest?: GuestRef; mmioHandler?: unknown };
  resolveGuestUrl(o.guest ?? 'idle');
  if (o.mmioHandler !== undefined) resolveModuleUrl(o.mmioHandler, 'mmioHandler');
}
