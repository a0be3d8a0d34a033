/**
 * vm.lockStats() on a real VM: per-phase deltas with { reset: true }, instance names, and bad
 * options as EINVAL (never a TypeError). Single-threaded (the VMM's own ioctls), so exact.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { lockInstanceLabel } from '../../src/kvm/lock-stats.js';
import { LockClass } from '../../src/sync/lock-classes.js';
import { buildV3, expectErrno, spiLine, VmTracker } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const byName = (rows: { name: string; acquisitions: number }[], n: string): number => rows.find((r) => r.name === n)!.acquisitions;

describe('vm.lockStats()', () => {
  it('{ reset: true } returns the phase and starts the next one', () => {
    const { vm } = tracker.track(buildV3({ vcpus: 1, guest: 'idle', vm: { lockStats: 'timed' } }));
    const setup = vm.lockStats({ reset: true });
    expect(byName(setup, 'kvm->lock')).toBeGreaterThan(0);
    expect(byName(vm.lockStats(), 'irq_lock')).toBe(0);
    for (let i = 0; i < 5; i++) {
      vm.irqLine(spiLine(40), 1);
      vm.irqLine(spiLine(40), 0);
    }
    const phase = vm.lockStats({ reset: true });
    const irq = phase.find((r) => r.name === 'irq_lock')!;
    // Each KVM_IRQ_LINE takes SPI 40's irq_lock once (raise and lower; no vCPU runs to queue it on).
    expect(irq.acquisitions).toBeGreaterThanOrEqual(10);
    expect(irq.contentions).toBe(0);
    expect(irq.holdNs).toBeGreaterThan(0);
    expect(irq.holdMinNs).toBeLessThanOrEqual(irq.holdAvgNs);
    expect(irq.holdAvgNs).toBeLessThanOrEqual(irq.holdMaxNs);
    expect(byName(phase, 'kvm->lock')).toBe(0);
    const next = vm.lockStats();
    expect(next.every((r) => r.acquisitions === 0 && r.holdNs === 0 && r.holdMaxNs === 0)).toBe(true);
  });

  it('instances are named after what the lock guards', () => {
    const { vm } = tracker.track(buildV3({ vcpus: 2, guest: 'idle' }));
    const g = vm.host.g;
    expect(lockInstanceLabel(vm.host, LockClass.IrqLock, g.spiRecordBase + 8)).toBe('SPI 40');
    expect(lockInstanceLabel(vm.host, LockClass.IrqLock, 32 + 27)).toBe('PPI 27 (vCPU 1)');
    expect(lockInstanceLabel(vm.host, LockClass.IrqLock, 3)).toBe('SGI 3 (vCPU 0)');
    expect(lockInstanceLabel(vm.host, LockClass.ApListLock, 1)).toBe('vCPU 1');
    expect(lockInstanceLabel(vm.host, LockClass.DistLock, -1)).toBe('dist->lock');
    expect(vm.lockStats({ instances: 3 }).every((r) => Array.isArray(r.instances))).toBe(true);
  });

  it('bad options are EINVAL', () => {
    const { vm } = tracker.track(buildV3({ vcpus: 1, guest: 'idle' }));
    for (const bad of [{ instances: -1 }, { instances: 1.5 }, { instances: '3' }, { reset: 1 }, { bogus: true }, null, 7]) {
      expectErrno(() => vm.lockStats(bad as never), 'EINVAL');
    }
  });
});
