/**
 * An LPI acknowledged at one priority, re-sent while active, and re-prioritised (property table +
 * INV) before the guest's EOI. Mainline's fold keeps the LR's active bit for everything but LPIs
 * (spec §4.8, §5.6: "any LPI active state is removed on exit"). Had it kept it, the next flush
 * would put the LPI back pending+active at the new priority, the guest's EOI would drop the old
 * priority and, matching no active LR of that priority, deactivate nothing (spec §5.1), and the
 * second MSI would never be acknowledged: kvm_vgic_vcpu_pending_irq never counts a pending+active
 * IRQ, so a vCPU in WFI sleeps on it for good (found by its-cmds, pct depth 4, seed 0x9a50761e).
 * Expected values come from the spec, not from a run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { distPath } from '../../src/kvm/worker-path.js';
import { KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_MSI_VALID_DEVID, KVM_VGIC_ITS_ADDR_TYPE } from '../../src/uapi/index.js';
import { SRAM } from '../../src/stress/ram.js';
import { ITS_BASE } from '../../src/stress/scenarios/its-layout.js';
import { VmTracker, build, startRun, waitRam, within, USER_MMIO_GPA } from '../helpers.js';

const LPI = 8192;
const READY = SRAM.SCRATCH;
const ACKED = SRAM.SCRATCH + 1;
const RESENT = SRAM.SCRATCH + 2;
const SPURIOUS = 1023;

const DIST = (p: string): string => pathToFileURL(distPath(p)).href;

/** The guest: bring up the ITS, map event 0 of device 0 to LPI 8192 (priority 0xa0), then the steps above. */
const guest = {
  source: `
import { setLpiConfig } from ${JSON.stringify(DIST('src/guest/its-driver.js'))};
import { ITT, LPI_LAYOUT, itsGuestBringUp } from ${JSON.stringify(DIST('src/stress/scenarios/its-layout.js'))};
export default function lpiActiveFold(cpu, a) {
  cpu.initCpuInterface();
  const its = itsGuestBringUp(cpu, [a.lpi]);
  its.mapc(0, 0);
  its.mapd(0, ITT, 1);
  its.mapti(0, 0, a.lpi, 0);
  its.waitSync();
  cpu.store(a.ready, 1);
  let id = ${SPURIOUS};
  for (let n = 0; n < 100000 && (id = cpu.iar()) === ${SPURIOUS}; n++) cpu.mmioRead(a.userGpa);
  const out = [id, cpu.rpr()];
  cpu.store(a.acked, 1);
  for (let n = 0; n < 10000000 && cpu.load(a.resent) === 0; n++) cpu.relax();
  // Re-prioritised while active; a full exit folds the LR and the flush repopulates it.
  setLpiConfig(cpu, LPI_LAYOUT, a.lpi, 0x80, true);
  its.inv(0, 0);
  its.waitSync();
  cpu.mmioRead(a.userGpa);
  cpu.eoi(a.lpi);
  out.push(cpu.rpr());
  cpu.mmioRead(a.userGpa);
  id = ${SPURIOUS};
  for (let n = 0; n < 100 && (id = cpu.iar()) === ${SPURIOUS}; n++) cpu.mmioRead(a.userGpa);
  out.push(id);
  if (id !== ${SPURIOUS}) cpu.eoi(id);
  return out;
}
`,
};

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

describe('an active LPI re-sent and re-prioritised before its EOI (mainline fold, spec §5.6)', () => {
  it('the second MSI is acknowledged after the EOI', async () => {
    const { vm, gic } = tracker.track(build(3, {
      vcpus: 1, noInit: true, guest, args: { lpi: LPI, ready: READY, acked: ACKED, resent: RESENT, userGpa: USER_MMIO_GPA },
    }));
    const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    const run = startRun(vm);
    const msi = (): number => vm.signalMsi({ addressLo: ITS_BASE + 0x10040, data: 0, devid: 0, flags: KVM_MSI_VALID_DEVID });
    await waitRam(vm, READY, 10_000, 'the guest to map its LPI', run);
    expect(msi(), 'the first MSI').toBe(1);
    await waitRam(vm, ACKED, 10_000, 'the guest to acknowledge the first MSI', run);
    expect(msi(), 'the second MSI, while the first is active').toBe(1);
    Atomics.store(vm.ram, RESENT, 1);
    const [r] = await within(run.promise, 20_000, 'the guest to return');
    // [first IAR, RPR while active, RPR after the EOI, IAR after the EOI]
    expect(r!.result).toEqual([LPI, 0xa0, 0xff, LPI]);
  });
});
