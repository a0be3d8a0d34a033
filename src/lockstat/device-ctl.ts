/** What the lockstat runner hands a device worker (lockstat/device-worker.ts), and its control words. */
import type { EventFdHandle } from '../eventfd/eventfd.js';
import type { VmBuffers } from '../shm/vm-memory.js';
import type { SharedVmConfig } from '../vgic/host.js';

export interface LockstatDeviceData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  slot: number;
  name: string;
  clockBase: number;
  ctl: SharedArrayBuffer;
  edge: { intid: number; fd: EventFdHandle }[];
  level: { intid: number; fd: EventFdHandle; resample: EventFdHandle }[];
}

export const DEV_CTL = { RUN: 0, SENT: 1, ENDED: 2 } as const;
