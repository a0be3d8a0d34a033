/**
 * GSI routing (kernel virt/kvm/irqchip.c and arm64 vgic-irqfd.c, spec §8.2, §8.7): the table set by
 * KVM_SET_GSI_ROUTING, and delivering a GSI through it. Until a table is set, the default applies:
 * GSI n is SPI n + 32. The table lives in shared memory behind a seqlock: irqfd paths in any thread
 * read it without a lock and retry if KVM_SET_GSI_ROUTING rewrote it meanwhile (the kernel reads
 * its routing under SRCU and caches an irqfd's route under a seqcount).
 */
import { kvmErr, KvmError } from '../uapi/errno.js';
import { KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_NUM_PINS, KVM_MAX_IRQ_ROUTES, KVM_MSI_VALID_DEVID, VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import { NR_ROUTES, ROUTE } from '../shm/layouts.js';
import { routeOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { itsByDoorbell, vgicItsInjectMsi } from './its/translate.js';
import { injectIrq } from './queue.js';
import { lockKvm, unlockKvm } from './locks.js';

/** struct kvm_irq_routing_entry, flattened. */
export type RoutingEntry =
  | { gsi: number; type: typeof KVM_IRQ_ROUTING_IRQCHIP; flags?: number; irqchip?: number; pin: number }
  | { gsi: number; type: typeof KVM_IRQ_ROUTING_MSI; flags?: number; addressLo: number; addressHi?: number; data: number; devid?: number };

/** One route as read from the table. */
export interface Route {
  type: number;
  pin: number;
  address: number;
  data: number;
  flags: number;
  devid: number;
}

const R = ROUTE.off;

/** KVM_SET_GSI_ROUTING: validate everything first, then replace the whole table. */
export function setGsiRouting(h: Host, entries: readonly RoutingEntry[]): void {
  if (!Array.isArray(entries)) kvmErr('EINVAL', 'KVM_SET_GSI_ROUTING: expected an array of entries');
  if (entries.length > KVM_MAX_IRQ_ROUTES) kvmErr('EINVAL', `KVM_SET_GSI_ROUTING: more than ${KVM_MAX_IRQ_ROUTES} entries`);
  if (entries.length > NR_ROUTES) kvmErr('ENOMEM', `KVM_SET_GSI_ROUTING: this model holds at most ${NR_ROUTES} entries`);
  const u32 = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffff_ffff;
  entries.forEach((e, i) => {
    // The entries are copied from user memory (kvm_vm_ioctl KVM_SET_GSI_ROUTING): a hole is EFAULT.
    if (e === null || typeof e !== 'object') kvmErr('EFAULT', `routing entry ${i}: no readable entry`);
    if (!Number.isInteger(e.gsi) || e.gsi < 0 || e.gsi >= KVM_MAX_IRQ_ROUTES) kvmErr('EINVAL', `routing entry ${i}: bad gsi`);
    const flags = e.flags ?? 0;
    if (e.type === KVM_IRQ_ROUTING_IRQCHIP) {
      if (flags !== 0) kvmErr('EINVAL', `routing entry ${i}: irqchip routes take no flags`);
      if ((e.irqchip ?? 0) !== 0) kvmErr('EINVAL', `routing entry ${i}: arm has one irqchip (index 0)`);
      if (!Number.isInteger(e.pin) || e.pin < 0 || e.pin >= KVM_IRQCHIP_NUM_PINS) kvmErr('EINVAL', `routing entry ${i}: pin ${e.pin} is not below ${KVM_IRQCHIP_NUM_PINS}`);
      // "Do not allow GSI to be mapped to the same irqchip more than once" (setup_routing_entry).
      if (entries.some((o, j) => j < i && o.gsi === e.gsi && o.type === KVM_IRQ_ROUTING_IRQCHIP)) kvmErr('EINVAL', `routing entry ${i}: gsi ${e.gsi} already has an irqchip route`);
    } else if (e.type === KVM_IRQ_ROUTING_MSI) {
      if (flags & ~KVM_MSI_VALID_DEVID) kvmErr('EINVAL', `routing entry ${i}: unknown MSI flags ${flags}`);
      if (!u32(e.addressLo) || !u32(e.addressHi ?? 0) || !u32(e.data) || !u32(e.devid ?? 0)) kvmErr('EINVAL', `routing entry ${i}: MSI fields must be u32`);
    } else kvmErr('EINVAL', `routing entry ${i}: unknown type ${(e as { type: unknown }).type}`);
  });
  // Seqlock write side. Writers must be serialised (KVM: kvm->irq_lock around kvm_set_irq_routing;
  // here kvm->lock, the outermost mutex, which no caller holds): two threads rewriting at once
  // would both make the sequence odd and even again with the table half written by each ("two
  // seqlock writers", found by the lockset checker with the VMM and a driver thread both routing).
  lockKvm(h);
  try {
    writeRoutes(h, entries);
  } finally {
    unlockKvm(h);
  }
}

function writeRoutes(h: Host, entries: readonly RoutingEntry[]): void {
  const m = h.m;
  Atomics.add(m, D.routeSeq, 1);
  entries.forEach((e, i) => {
    const o = routeOff(h.g, i);
    m[o + R.gsi] = e.gsi;
    m[o + R.type] = e.type;
    m[o + R.flags] = e.flags ?? 0;
    if (e.type === KVM_IRQ_ROUTING_IRQCHIP) m[o + R.pin] = e.pin;
    else {
      m[o + R.addrLo] = e.addressLo | 0;
      m[o + R.addrHi] = (e.addressHi ?? 0) | 0;
      m[o + R.data] = e.data | 0;
      m[o + R.devid] = (e.devid ?? 0) | 0;
    }
  });
  Atomics.store(m, D.nrRoutes, entries.length);
  Atomics.add(m, D.routeSeq, 1);
}

/** The routes of `gsi` (default table: one irqchip route for an existing SPI). Lock-free. */
export function routesOf(h: Host, gsi: number): Route[] {
  const m = h.m;
  for (let spins = 0; ; spins++) {
    const s = Atomics.load(m, D.routeSeq);
    if (s & 1) {
      // KVM_SET_GSI_ROUTING is rewriting the table ("reader vs rewrite"): retry. The writer's
      // critical section is short, but its thread may be preempted, so never a pure spin
      // (PLATFORM.md): after a few tries, sleep a short slice (the writer does not notify).
      if (spins > 100) Atomics.wait(m, D.routeSeq, s, 0.05);
      continue;
    }
    const n = Atomics.load(m, D.nrRoutes);
    const out: Route[] = [];
    if (n < 0) {
      if (gsi < m[D.nrSpis]!) out.push({ type: KVM_IRQ_ROUTING_IRQCHIP, pin: gsi, address: 0, data: 0, flags: 0, devid: 0 });
    } else {
      for (let i = 0; i < n; i++) {
        const o = routeOff(h.g, i);
        if (m[o + R.gsi] !== gsi) continue;
        out.push({
          type: m[o + R.type]!, pin: m[o + R.pin]!, address: (m[o + R.addrHi]! >>> 0) * 0x1_0000_0000 + (m[o + R.addrLo]! >>> 0),
          data: m[o + R.data]! >>> 0, flags: m[o + R.flags]!, devid: m[o + R.devid]! >>> 0,
        });
      }
    }
    if (Atomics.load(m, D.routeSeq) === s) return out;
  }
}

/**
 * kvm_set_irq / vgic_irqfd_set_irq through the routing table: every route of the GSI. Returns
 * false if there is no route or the vgic (or the ITS) refused a delivery (no such SPI, an
 * uninitialised GICv3, an MSI the ITS dropped): the kernel's irqfd paths drop the event then, and
 * ours count it as dropped so that it is never silent.
 */
export function setGsi(h: Host, gsi: number, level: boolean): boolean {
  // The default table (no KVM_SET_GSI_ROUTING yet) is the common case of every irqfd injection:
  // answer it without building a route list (no allocation on the interrupt path).
  if (Atomics.load(h.m, D.nrRoutes) < 0) {
    if (gsi >= h.m[D.nrSpis]!) return false;
    try {
      injectIrq(h, -1, gsi + VGIC_NR_PRIVATE_IRQS, level);
      return true;
    } catch (e) {
      if (e instanceof KvmError) return false;
      throw e;
    }
  }
  const routes = routesOf(h, gsi);
  let ok = routes.length > 0; // no route: kvm_set_irq returns -1, the event goes nowhere
  for (const r of routes) {
    try {
      if (r.type === KVM_IRQ_ROUTING_IRQCHIP) injectIrq(h, -1, r.pin + VGIC_NR_PRIVATE_IRQS, level);
      else if (level) {
        // kvm_set_msi: no ITS -> ENODEV; then vgic_its_inject_msi (0 = the ITS dropped it).
        if (!Atomics.load(h.m, D.nrIts)) kvmErr('ENODEV', 'MSI route without an ITS');
        if (vgicItsInjectMsi(h, r.address, r.devid, r.data, r.flags) !== 1) ok = false;
      }
    } catch (e) {
      if (!(e instanceof KvmError)) throw e;
      ok = false;
    }
  }
  return ok;
}

/**
 * kvm_arch_set_irq_inatomic's question for the irqfd fast path: how could `gsi` be raised without
 * sleeping? 'irqchip' once the vgic is initialised; for an MSI route, the ITS whose translation
 * cache may hold it (the caller looks it up before consuming the eventfd); null for -EWOULDBLOCK
 * (the injector's work item does it).
 */
export function atomicRoute(h: Host, gsi: number): 'irqchip' | { its: number; devid: number; data: number } | null {
  if (!Atomics.load(h.m, D.initialized)) return null;
  if (Atomics.load(h.m, D.nrRoutes) < 0) return 'irqchip'; // default table: no allocation
  const routes = routesOf(h, gsi);
  // Like the kernel's cached irqfd route: only a GSI with exactly one route; none: setGsi drops
  // the event, which it may as well do right here.
  if (routes.length !== 1) return routes.length === 0 ? 'irqchip' : null;
  const r = routes[0]!;
  if (r.type === KVM_IRQ_ROUTING_IRQCHIP) return 'irqchip';
  const its = itsByDoorbell(h, r.address);
  return its < 0 ? null : { its, devid: r.devid, data: r.data };
}
