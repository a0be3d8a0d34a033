/**
 * Checking mode's views of the VM state: Proxies over the thread's Int32Array / Float64Array whose
 * element traps run the lockset check, and wrappers of the Atomics functions (which refuse a
 * Proxy) that unwrap a checked view and record the access as atomic. The call sites stay
 * `m[b + IRQ.off.x]` and `Atomics.load(m, i)`; with checking off `h.m` is the plain array.
 */
import { Access, checkAccess, type AccessCtx } from './check.js';

interface ViewInfo {
  readonly target: Int32Array | Float64Array;
  readonly ctx: AccessCtx;
  /** Words per element: 1 for the Int32 view, 2 for the Float64 view. */
  readonly scale: number;
}

const views = new WeakMap<object, ViewInfo>();

/** The array under a checked view (diagnostic readers: watchdog, audits), or the array itself. */
export function unchecked<T extends Int32Array | Float64Array>(a: T): T {
  return (views.get(a)?.target as T | undefined) ?? a;
}

export function isChecked(a: object): boolean {
  return views.has(a);
}

/** Element index of a property key, or -1 (length, methods, symbols). */
function indexOf(p: string | symbol): number {
  if (typeof p !== 'string') return -1;
  const c = p.charCodeAt(0);
  return c >= 48 && c <= 57 ? +p : -1;
}

export function checkedView<T extends Int32Array | Float64Array>(target: T, ctx: AccessCtx): T {
  installAtomics();
  const scale = target instanceof Float64Array ? 2 : 1;
  const p = new Proxy(target, {
    get(t, key) {
      const i = indexOf(key);
      if (i >= 0) {
        checkAccess(ctx, i * scale, Access.Read);
        return t[i];
      }
      const v = Reflect.get(t, key, t) as unknown;
      // Typed-array methods need the real array as `this` (m.fill, m.subarray …: bulk, unchecked).
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
    set(t, key, value) {
      const i = indexOf(key);
      if (i >= 0) {
        checkAccess(ctx, i * scale, Access.Write);
        t[i] = value as number;
        return true;
      }
      return Reflect.set(t, key, value, t);
    },
  });
  views.set(p, { target, ctx, scale });
  return p;
}

type Ta = Int32Array;
let installed = false;

/**
 * Replace this thread's Atomics functions, once: a checked view is unwrapped and the access
 * recorded; anything else goes straight through (one WeakMap miss).
 */
function installAtomics(): void {
  if (installed) return;
  installed = true;
  const A = Atomics as unknown as Record<string, (...a: unknown[]) => unknown>;
  const wrap = (name: string, acc: Access | -1): void => {
    const orig = A[name]!;
    // Fixed arity (no rest array): every Atomics function treats a missing trailing argument
    // and an undefined one alike (wait: no timeout, notify: wake all).
    A[name] = function (a: unknown, i: unknown, x: unknown, y: unknown): unknown {
      const v = views.get(a as object);
      if (v === undefined) return orig.call(Atomics, a, i, x, y);
      if (acc >= 0) checkAccess(v.ctx, (i as number) * v.scale, acc as Access);
      return orig.call(Atomics, v.target as Ta, i, x, y);
    };
  };
  wrap('load', Access.AtomicRead);
  wrap('wait', Access.AtomicRead);
  if ('waitAsync' in Atomics) wrap('waitAsync', Access.AtomicRead);
  wrap('notify', -1);
  for (const n of ['store', 'add', 'sub', 'and', 'or', 'xor', 'exchange', 'compareExchange']) wrap(n, Access.AtomicWrite);
}
