/**
 * The default KVM_EXIT_MMIO handler: a register file in shared memory, so a value one vCPU writes
 * at an address is what any vCPU reads back there (never-written addresses read 0). An open-
 * addressing table of USER_MMIO_SLOTS slots [state, addrLo, addrHi, value]; a slot is claimed with a CAS on
 * its state word so two vCPUs creating different registers at once cannot take the same slot.
 */
import { USER_MMIO_SLOTS } from '../shm/vm-memory.js';
import type { UserMmioHandler } from '../guest/guest-cpu.js';
import { kvmErr } from '../uapi/errno.js';

const EMPTY = 0;
const CLAIMING = 1;
const USED = 2;

export function defaultUserMmio(buf: SharedArrayBuffer): UserMmioHandler {
  const t = new Int32Array(buf);
  const find = (gpa: number, create: boolean): number => {
    const lo = gpa >>> 0;
    const hi = Math.floor(gpa / 2 ** 32);
    let i = ((lo >>> 2) ^ (hi * 2654435761)) & (USER_MMIO_SLOTS - 1);
    for (let n = 0; n < USER_MMIO_SLOTS; n++, i = (i + 1) & (USER_MMIO_SLOTS - 1)) {
      const b = i * 4;
      let st = Atomics.load(t, b);
      while (st === CLAIMING) st = Atomics.load(t, b); // a creator is filling the key in
      if (st === USED) {
        if (t[b + 1] === (lo | 0) && t[b + 2] === hi) return b;
        continue;
      }
      if (!create) return -1;
      if (Atomics.compareExchange(t, b, EMPTY, CLAIMING) === EMPTY) {
        t[b + 1] = lo | 0;
        t[b + 2] = hi;
        Atomics.store(t, b, USED);
        return b;
      }
      // Lost the race for this slot: look at it again (it may now hold our address).
      n--;
      i = (i - 1) & (USER_MMIO_SLOTS - 1);
    }
    kvmErr('ENOSPC', `KVM_EXIT_MMIO: the default register file holds ${USER_MMIO_SLOTS} distinct addresses and all are in use (write to 0x${gpa.toString(16)}); give createVcpu an mmioHandler for more`);
  };
  const mask = (len: number): number => (len >= 4 ? 0xffffffff : (1 << (len * 8)) - 1);
  return {
    read(gpa, len) {
      const b = find(gpa, false);
      return b < 0 ? 0 : (Atomics.load(t, b + 3) & mask(len)) >>> 0;
    },
    write(gpa, len, value) {
      const b = find(gpa, true);
      Atomics.store(t, b + 3, value & mask(len));
    },
  };
}
