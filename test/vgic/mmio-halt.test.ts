/**
 * kvm_arm_halt_guest / resume (spec §2.4): halting forces vCPUs out of guest mode and waits for
 * them; resume clears pause. A tiny worker plays a vCPU that leaves the guest when kicked.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { IN_GUEST_MODE, KVM_REQ_SLEEP, OUTSIDE_GUEST_MODE } from '../../src/uapi/kvm.js';
import { VCPU } from '../../src/shm/layouts.js';
import { vcpuOff } from '../../src/shm/vm-memory.js';
import { TeardownError } from '../../src/sync/lock.js';
import { haltGuest, resumeGuest } from '../../src/vgic/halt.js';
import { dw } from '../../src/vgic/host.js';
import { makeVm, setVcpuField, vcpuField } from './mmio-helpers.js';

/**
 * A "vCPU" that, once the halt has begun (pause set) and it was kicked out of the guest (mode no
 * longer IN_GUEST), waits `delayMs`, folds (usedLrs = 0) and is outside. Started OUTSIDE with
 * usedLrs set, it plays a vCPU between LR flush and fold.
 */
const VCPU_CODE = `
const { workerData, parentPort } = require('node:worker_threads');
const m = new Int32Array(workerData.sab);
const sleep = new Int32Array(new SharedArrayBuffer(4));
parentPort.postMessage('ready');
while (Atomics.load(m, workerData.pause) === 0 || Atomics.load(m, workerData.mode) === workerData.inGuest) Atomics.wait(sleep, 0, 0, 0.2);
Atomics.wait(sleep, 0, 0, workerData.delayMs);
Atomics.store(m, workerData.usedLrs, 0);
Atomics.store(m, workerData.mode, workerData.outside);
`;

function fakeVcpu(sab: SharedArrayBuffer, vb: number, delayMs: number): Promise<Worker> {
  const w = new Worker(VCPU_CODE, {
    eval: true,
    workerData: {
      sab,
      mode: vb + VCPU.off.mode,
      pause: vb + VCPU.off.pause,
      usedLrs: vb + VCPU.off.usedLrs,
      inGuest: IN_GUEST_MODE,
      outside: OUTSIDE_GUEST_MODE,
      delayMs,
    },
  });
  return new Promise((resolve) => w.once('message', () => resolve(w)));
}

describe('haltGuest / resumeGuest', () => {
  it('kicks a vCPU in the guest, waits until it has left with its LRs folded, then resumes', async () => {
    const h = makeVm({ model: 3, vcpus: 3 });
    const vb = vcpuOff(h.g, 1);
    setVcpuField(h, 1, 'mode', IN_GUEST_MODE);
    setVcpuField(h, 1, 'usedLrs', 2);
    setVcpuField(h, 1, 'mutex', 1); // inside KVM_RUN (lock word only)
    for (const v of [0, 1, 2]) setVcpuField(h, v, 'requests', 0);
    const w = await fakeVcpu(h.buf.state, vb, 20);
    try {
      haltGuest(h);
      expect(vcpuField(h, 1, 'mode')).toBe(OUTSIDE_GUEST_MODE);
      expect(vcpuField(h, 1, 'usedLrs')).toBe(0);
      for (const v of [0, 1, 2]) {
        expect(vcpuField(h, v, 'pause')).toBe(1);
        expect(vcpuField(h, v, 'requests') & KVM_REQ_SLEEP).toBe(KVM_REQ_SLEEP);
      }
      resumeGuest(h);
      for (const v of [0, 1, 2]) expect(vcpuField(h, v, 'pause')).toBe(0);
    } finally {
      await w.terminate();
    }
  });

  it('waits for a vCPU outside the guest whose flushed LRs are not folded yet (inside KVM_RUN only)', async () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 1, 'usedLrs', 1);
    // Outside KVM_RUN, leftover LRs are never folded: no wait.
    haltGuest(h);
    resumeGuest(h);
    setVcpuField(h, 1, 'mutex', 1);
    const w = await fakeVcpu(h.buf.state, vcpuOff(h.g, 1), 30);
    try {
      const t0 = performance.now();
      haltGuest(h);
      expect(vcpuField(h, 1, 'usedLrs')).toBe(0);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(20);
      resumeGuest(h);
    } finally {
      await w.terminate();
    }
  });

  it('a blocked vCPU is not woken by the halt, but is by the resume', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 1, 'blocked', 1);
    haltGuest(h);
    expect(vcpuField(h, 1, 'wake')).toBe(0);
    resumeGuest(h);
    expect(vcpuField(h, 1, 'wake')).toBe(1);
  });

  it('gives up with an error after ~2 s if a vCPU never leaves, and unpauses everyone', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 1, 'mode', IN_GUEST_MODE);
    const t0 = performance.now();
    expect(() => haltGuest(h)).toThrow(/did not leave the guest/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(vcpuField(h, 0, 'pause') | vcpuField(h, 1, 'pause')).toBe(0);
  });

  it('stops waiting at VM teardown', () => {
    const h = makeVm({ model: 3, vcpus: 2 });
    setVcpuField(h, 1, 'mode', IN_GUEST_MODE);
    h.m[dw(h, 'stop')] = 1;
    expect(() => haltGuest(h)).toThrow(TeardownError);
  });
});
