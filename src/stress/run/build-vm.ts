/**
 * Step 1 of a stress run: the VM's vCPUs (running the scenario's guest), the vgic, and the
 * scenario's own setup around CTRL_INIT.
 */
import type { Vm } from '../../kvm/vm.js';
import { markAbsent } from '../../sched/controlled.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_V2,
  KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../uapi/kvm.js';
import { D } from '../../vgic/host.js';
import type { ScenarioModule } from '../scenario.js';
import { injectorSchedSlot } from '../thread-config.js';
import type { RunPlan } from './plan.js';

export function buildVm(vm: Vm, p: RunPlan, url: string, mod: ScenarioModule, sched: SharedArrayBuffer | null): void {
  const { gic, args } = p;
  for (let i = 0; i < p.vcpus; i++) vm.createVcpu(i, { guest: url, args });
  const dev = vm.createDevice(gic === 'v3' ? KVM_DEV_TYPE_ARM_VGIC_V3 : KVM_DEV_TYPE_ARM_VGIC_V2);
  dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, gic === 'v3' ? KVM_VGIC_V3_ADDR_TYPE_DIST : KVM_VGIC_V2_ADDR_TYPE_DIST, 0x08000000n);
  if (gic === 'v3') dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
  else dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, 0x08010000n);
  mod.setup?.(vm, args, 'before-init');
  dev.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  mod.setup?.(vm, args, 'after-init');
  // The first irqfd starts the injector, which joins the schedule; with none it never will.
  if (sched && Atomics.load(vm.host.m, D.irqfdHiwater) === 0) markAbsent(sched, injectorSchedSlot(p.vcpus));
}
