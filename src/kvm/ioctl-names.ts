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

/** Wrap `proto`'s methods so that the KvmErrors they throw carry their ioctl name. */
export function nameIoctls(proto: object, table: Readonly<Record<string, string>>): void {
  const p = proto as Record<string, unknown>;
  for (const [method, name] of Object.entries(table)) {
    const fn = p[method];
    if (typeof fn !== 'function') throw new Error(`nameIoctls: no method ${method}`);
    p[method] = function (this: unknown, ...args: unknown[]): unknown {
      try {
        const r = (fn as (...a: unknown[]) => unknown).apply(this, args);
        return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(stamp(e, name))) : r;
      } catch (e) {
        throw stamp(e, name);
      }
    };
  }
}

export const DEVICE_ATTR_IOCTLS = { setAttr: 'KVM_SET_DEVICE_ATTR', getAttr: 'KVM_GET_DEVICE_ATTR', hasAttr: 'KVM_HAS_DEVICE_ATTR' } as const;
