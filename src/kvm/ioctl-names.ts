/**
 * Which ioctl each public method is, as data: a KvmError thrown (or a promise rejected) by the
 * method names that ioctl as its `syscall`, as Node's SystemError names the syscall, whatever
 * depth of the model raised it.
 */
import { KvmError } from '../uapi/errno.js';

function stamp(e: unknown, name: string): unknown {
  if (e instanceof KvmError) e.syscall = name;
  return e;
}

/** The widest method wrapped (VFIO_DEVICE_SET_IRQS's five arguments). */
const MAX_ARGS = 5;

/**
 * Wrap `proto`'s methods so that the KvmErrors they throw carry their ioctl name. Fixed arity, no
 * rest array: irqLine is the VMM's injection call and must not allocate per interrupt (passing
 * undefined for an absent argument still applies the method's defaults).
 */
export function nameIoctls(proto: object, table: Readonly<Record<string, string>>): void {
  const p = proto as Record<string, unknown>;
  for (const [method, name] of Object.entries(table)) {
    const fn = p[method] as (a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown) => unknown;
    if (typeof fn !== 'function') throw new Error(`nameIoctls: no method ${method}`);
    if (fn.length > MAX_ARGS) throw new Error(`nameIoctls: ${method} takes more than ${MAX_ARGS} arguments`);
    p[method] = function (this: unknown, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown): unknown {
      try {
        const r = fn.call(this, a, b, c, d, e);
        return r instanceof Promise ? r.catch((err: unknown) => Promise.reject(stamp(err, name))) : r;
      } catch (err) {
        throw stamp(err, name);
      }
    };
  }
}

export const DEVICE_ATTR_IOCTLS = { setAttr: 'KVM_SET_DEVICE_ATTR', getAttr: 'KVM_GET_DEVICE_ATTR', hasAttr: 'KVM_HAS_DEVICE_ATTR' } as const;
