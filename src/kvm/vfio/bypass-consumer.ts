/**
 * The KVM side of irq bypass for irqfds (kvm_arch_irq_bypass_add_producer / del_producer), as
 * the 2015 proposal asked: "why not forward automatically when VFIO and KVM share the eventfd?".
 * When an irqfd's eventfd is also a VFIO device's trigger, the device's line is forwarded to the
 * irqfd's SPI; when either side goes, it is unforwarded.
 *
 * Forwarding is refused (EAGAIN) while the line is masked or active; connecting cannot fail for
 * that reason, so the consumer retries on a timer until it succeeds or is disconnected. The
 * kernel's arm64 code only does this for MSIs with GICv4 (spec §10.4); vgic-emu does it for SPIs
 * when the VM is created with `irqBypass: true`.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../../uapi/kvm.js';
import { KvmError } from '../../uapi/errno.js';
import type { IrqBypassConsumer, IrqBypassProducer } from '../irq-bypass.js';
import type { Host } from '../../vgic/host.js';
import { forwardIrq, isForwarded, unforwardIrq } from './forward.js';
import { PHYS_IRQ } from '../../shm/layouts.js';
import { physOff } from '../../shm/vm-memory.js';
import type { VfioBypassProducer } from './platform-device.js';

const RETRY_MS = 1;

export interface ForwardingConsumer extends IrqBypassConsumer {
  /** Is the paired line forwarded now? */
  readonly forwarded: boolean;
  /** The last error other than EAGAIN that stopped the retries, if any. */
  readonly error: Error | null;
}

function isVfio(p: IrqBypassProducer): p is VfioBypassProducer {
  return typeof (p as VfioBypassProducer).vfio === 'object';
}

export function forwardingConsumer(h: Host, token: string, gsi: number): ForwardingConsumer {
  let producer: VfioBypassProducer | null = null;
  let timer: NodeJS.Timeout | null = null;
  let forwarded = false;
  let error: Error | null = null;
  const attempt = (): void => {
    timer = null;
    if (!producer) return;
    try {
      forwardIrq(h, producer.vfio.line, gsi);
      forwarded = true;
    } catch (e) {
      if (e instanceof KvmError && e.code === 'EAGAIN') {
        timer = setTimeout(attempt, RETRY_MS);
        timer.unref();
      } else error = e as Error;
    }
  };
  return {
    token,
    get forwarded() {
      return forwarded;
    },
    get error() {
      return error;
    },
    addProducer(p: IrqBypassProducer): void {
      // Only a VFIO line of this same VM can be forwarded to its SPI.
      if (!isVfio(p) || p.vfio.host !== h) return;
      producer = p;
      attempt();
    },
    delProducer(p: IrqBypassProducer): void {
      if (p !== producer) return;
      if (timer) clearTimeout(timer);
      timer = null;
      // The line may have been unforwarded meanwhile through the KVM VFIO device: undo only our
      // own forwarding, which must not fail (the kernel's del_producer cannot).
      const line = producer.vfio.line;
      if (forwarded && isForwarded(h, line) && h.m[physOff(h.g, line) + PHYS_IRQ.off.vintid] === gsi + VGIC_NR_PRIVATE_IRQS) unforwardIrq(h, line);
      forwarded = false;
      producer = null;
    },
  };
}
