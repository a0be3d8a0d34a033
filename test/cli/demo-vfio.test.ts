/**
 * `vgic-emu demo --vfio` as a user runs it: the built CLI in a child process, bounded. It must
 * walk QEMU's start-up order, forward midway, tear irqfds down before the vgic, and account for
 * every physical interrupt exactly once; `--early-irqfd` must show the kernel's EAGAIN.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { distPath } from '../../src/kvm/worker-path.js';
import type { VfioDemoSummary } from '../../src/cli/demo-vfio.js';

const CLI_TIMEOUT_MS = 40_000;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [distPath('src/cli/main.js'), ...args], { timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('vgic-emu demo --vfio', () => {
  it('--early-irqfd: KVM_IRQFD before CTRL_INIT is refused with EAGAIN, then the proper order runs clean', async () => {
    const r = await cli(['demo', '--vfio', '--early-irqfd', '--seconds', '1', '--vcpus', '2', '--devices', '2', '--lines', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as VfioDemoSummary;
    expect(s.earlyIrqfd).toBe('EAGAIN (-11)');
    expect(r.stderr).toMatch(/refused with EAGAIN/);
    // The steps, in QEMU's order.
    const steps = ['1. create the vCPUs', '2. set the GIC addresses', '3. KVM_DEV_ARM_VGIC_CTRL_INIT', '4. VFIO signalling', '5. run', '6. tear down'];
    const at = steps.map((t) => r.stderr.indexOf(t));
    expect(at.every((i) => i >= 0), r.stderr).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(r.stderr.indexOf('--early-irqfd')).toBeLessThan(at[2]!);
    expect(s.teardown).toEqual(['irqfds', 'vcpus', 'vgic', 'vfio0', 'vfio1']);
    expect(s.ok).toBe(true);
    expect(s.forwarded).toBe(2);
    expect(s.lines).toHaveLength(2);
    for (const l of s.lines) {
      expect(l.raised).toBeGreaterThan(0);
      expect(l.acknowledged).toBe(l.raised);
      expect(l.injected).toBe(l.raised);
      // Completed once each, by the resample path before forwarding and by the guest's HW
      // deactivation after it.
      expect(l.resampled + l.hwCompleted).toBe(l.raised);
      expect(l.resampled).toBeGreaterThan(0);
      expect(l.hwCompleted).toBeGreaterThan(0);
    }
  });

  it('--no-forward keeps every line on the resample path', async () => {
    const r = await cli(['demo', '--vfio', '--no-forward', '--seconds', '0.5', '--vcpus', '2', '--devices', '1', '--lines', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as VfioDemoSummary;
    expect(s.earlyIrqfd).toBeNull();
    expect(s.forwarded).toBe(0);
    for (const l of s.lines) {
      expect(l.acknowledged).toBe(l.raised);
      expect(l.resampled).toBe(l.raised);
      expect(l.hwCompleted).toBe(0);
    }
  });

  it('rejects bad sizes with a usage error (exit 2)', async () => {
    const r = await cli(['demo', '--vfio', '--devices', '9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--devices/);
    const g = await cli(['demo', '--vfio', '--gic', 'v2']);
    expect(g.code).toBe(2);
  });
});
