/**
 * Every shared structure of a VM, declared once (DESIGN §2). Lock fields take two words
 * ([state, owner], see sync/lock.ts).
 */
import { vmLayout } from './layout.js';
import { ATOMIC, atomicRacyRead, initUnder, locked, lockedEitherRacyRead, lockedRacyRead, STATS, VCPU_OWNER, vcpuOwnerRacyRead, type Protection } from './protection.js';

const IRQ_LOCKED = locked('irq_lock');
const ITS_LOCKED = locked('its_lock');
/**
 * ITS registers whose writes are serialised by an ITS lock but whose register reads are not: the
 * kernel's read handlers (vgic_mmio_read_its_cbaser/_cwriter/_creadr/_baser) take no lock, and
 * userspace reads (vgic_its_attr_regs_access) run under kvm->lock with every vCPU locked and no
 * ITS lock. A read sees the old or the new value of one aligned word, never a mix.
 */
const ITS_REG_READ = 'ITS register reads take no ITS lock (vgic_mmio_read_its_*; vgic_its_attr_regs_access holds kvm->lock and every vCPU instead)';
/**
 * The guest writes the command-queue registers under cmd_lock (vgic_mmio_write_its_cbaser /
 * _cwriter); userspace writes them with no ITS lock but holding kvm->lock and every vCPU's mutex
 * (vgic_its_attr_regs_access restoring CBASER/CWRITER/CREADR, vgic_its_reset under
 * vgic_its_ctrl), which excludes the guest: every MMIO comes from a vCPU inside KVM_RUN.
 */
const USERSPACE_ALL_VCPUS = ['kvm->lock', 'all vcpu->mutex'] as const;
const CMD_REG = lockedEitherRacyRead(ITS_REG_READ, ['cmd_lock'], USERSPACE_ALL_VCPUS);
/** Fixed once configured: set under config_lock (vgic configuration) or kvm->lock (vCPU/VM creation). */
const CONFIG_INIT = initUnder('config_lock');
const KVM_INIT = initUnder('kvm->lock');
/** Written under its_lock / kvm->lock with a sequence count odd meanwhile, read lock-free. */
const ITS_SEQLOCK: Protection = { by: 'seqlock', writer: 'its_lock' };
const ROUTING_SEQLOCK: Protection = { by: 'seqlock', writer: 'kvm->lock' };

/** One interrupt record (struct vgic_irq). All mutable fields are guarded by `lock` (irq_lock). */
export const IRQ = vmLayout('vgic_irq', [
  { name: 'lock', kind: 'lock', words: 2, doc: 'irq_lock (spin)' },
  { name: 'vcpu', prot: locked('irq_lock', 'ap_list_lock'), doc: 'vCPU whose ap_list holds this IRQ, -1 if none' },
  { name: 'target', prot: lockedRacyRead('a peek at where the IRQ should go (READ_ONCE(irq->target_vcpu)); the queue path re-checks it under irq_lock', 'irq_lock'), doc: 'target_vcpu: where it should go, -1 if none' },
  { name: 'next', prot: locked('ap_list_lock'), doc: 'ap_list link: next record index, -1 at tail' },
  { name: 'prev', prot: locked('ap_list_lock'), doc: 'ap_list link: previous record index, -1 at head' },
  { name: 'intid', prot: initUnder('config_lock', 'lpi_lock'), doc: 'guest INTID' },
  { name: 'lineLevel', prot: IRQ_LOCKED, doc: 'input wire state (level)' },
  { name: 'pendingLatch', prot: IRQ_LOCKED, doc: 'latched pending state' },
  { name: 'active', prot: IRQ_LOCKED, doc: 'active state' },
  { name: 'enabled', prot: IRQ_LOCKED, doc: 'enable bit' },
  { name: 'config', prot: IRQ_LOCKED, doc: '0 = EDGE, 1 = LEVEL' },
  { name: 'group', prot: IRQ_LOCKED, doc: 'interrupt group 0/1' },
  { name: 'priority', prot: IRQ_LOCKED, doc: '8-bit priority, low 3 bits zero' },
  { name: 'hw', prot: IRQ_LOCKED, doc: 'backed by a physical interrupt' },
  { name: 'hwintid', prot: IRQ_LOCKED, doc: 'physical INTID when hw' },
  { name: 'targets', prot: IRQ_LOCKED, doc: 'v2: ITARGETSR byte; v3: IROUTER affinity (mpidr)' },
  { name: 'source', prot: IRQ_LOCKED, doc: 'v2 SGIs: bitmask of requesting vCPUs' },
  { name: 'activeSource', prot: IRQ_LOCKED, doc: 'v2 SGIs: source of the active instance' },
  { name: 'owner', prot: IRQ_LOCKED, doc: 'in-kernel owner token, 0 = none' },
  { name: 'onLr', prot: IRQ_LOCKED, doc: 'currently written into an LR' },
  { name: 'refcount', prot: ATOMIC, doc: 'LPIs only: references (ITEs, ap_list, translation caches); 0 = free' },
  { name: 'lpiGen', prot: lockedRacyRead('a cached pointer compares it lock-free; a mismatch only sends the lookup to the slow path', 'lpi_lock'), doc: 'LPIs only: bumped at each allocation (a cached pointer compares it)' },
]);

/** One list register, as the vCPU's shadow copy (ICH_LR<n>_EL2 / GICH_LR<n>). */
export const LR = vmLayout('list_register', [
  { name: 'intid', prot: VCPU_OWNER, doc: 'vINTID' },
  { name: 'state', prot: VCPU_OWNER, doc: 'bit0 PENDING, bit1 ACTIVE' },
  { name: 'priority', prot: VCPU_OWNER, doc: '8-bit priority' },
  { name: 'group', prot: VCPU_OWNER, doc: 'group bit' },
  { name: 'hw', prot: VCPU_OWNER, doc: 'HW bit: deactivation also deactivates pINTID' },
  { name: 'pintid', prot: VCPU_OWNER, doc: 'physical INTID when hw' },
  { name: 'eoi', prot: VCPU_OWNER, doc: 'EOI bit: maintenance interrupt when it goes invalid' },
  { name: 'cpuid', prot: VCPU_OWNER, doc: 'v2 SGIs: source vCPU (GICH_LR CPUID)' },
]);

export const LR_PENDING = 1;
export const LR_ACTIVE = 2;
export const MAX_LRS = 16;

/** Exit reasons counted per vCPU (order = index into the exit counters). */
export const EXIT_REASONS = ['irq', 'maintenance', 'mmio_kernel', 'mmio_user', 'sysreg', 'wfi', 'system_event', 'intr'] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];
export const EXIT = Object.fromEntries(EXIT_REASONS.map((r, i) => [r, i])) as { [K in ExitReason]: number };

/** Per-vCPU counters (statistics), in the order of this table. */
export const VCPU_COUNTERS = [
  'entries', 'irqsTaken', 'acks', 'spuriousAcks', 'eois', 'deactivations', 'wfi', 'wfiPolled', 'wfiParked',
  'kicksReceived', 'lrOverflows', 'prunes', 'migrations',
] as const;
export type VcpuCounter = (typeof VCPU_COUNTERS)[number];
/** Counter indices by name (CTR.acks ...), for allocation-free, non-keyed updates. */
export const CTR = Object.fromEntries(VCPU_COUNTERS.map((c, i) => [c, i])) as { readonly [K in VcpuCounter]: number };

/**
 * One architected timer of one vCPU (struct arch_timer_context): the guest's CNTx_CTL/CVAL plus
 * what KVM keeps beside them. Written only by its vCPU's thread while that vCPU runs, and by
 * userspace (KVM_SET_ONE_REG) under vcpu->mutex otherwise.
 */
export const TIMER_CTX = vmLayout('arch_timer_context', [
  { name: 'ctl', prot: VCPU_OWNER, doc: 'CNTx_CTL_EL0 ENABLE | IMASK (ISTATUS is computed on read)' },
  { name: 'cvalLo', prot: VCPU_OWNER, doc: 'CNTx_CVAL_EL0 [31:0]' },
  { name: 'cvalHi', prot: VCPU_OWNER, doc: 'CNTx_CVAL_EL0 [63:32]' },
  { name: 'level', prot: VCPU_OWNER, doc: 'irq.level: the output level last given to the vgic' },
  { name: 'physActive', prot: VCPU_OWNER, doc: "active state of the host's timer PPI on this vCPU's CPU (cleared by a HW-LR deactivation)" },
]);
/** Timer contexts per vCPU, indexed by KVM_ARM_VCPU_TIMER_IRQ_* (0 vtimer, 1 ptimer). */
export const NR_VCPU_TIMERS = 2;

/** Per-vCPU state (struct vgic_cpu plus the generic vcpu fields the vgic relies on). */
export const VCPU = vmLayout('vcpu', [
  { name: 'mutex', kind: 'lock', words: 2, doc: 'vcpu->mutex, held for the whole KVM_RUN' },
  { name: 'apLock', kind: 'lock', words: 2, doc: 'ap_list_lock (spin)' },
  { name: 'apHead', prot: lockedRacyRead('list_empty() peeks (vgic_flush_hwstate, kvm_vgic_sync_hwstate bail out without the lock): an injector links, then kicks, so the vCPU looks again', 'ap_list_lock'), doc: 'ap_list head record index, -1 if empty' },
  { name: 'apTail', prot: locked('ap_list_lock'), doc: 'ap_list tail record index, -1 if empty' },
  { name: 'created', prot: KVM_INIT, doc: '1 once KVM_CREATE_VCPU finished' },
  { name: 'mode', prot: atomicRacyRead('the guest instruction boundary polls it plainly (GuestCpu.b): the CPU taking the kick IPI; a stale IN_GUEST_MODE delays the exit to a later boundary, and the exit re-reads nothing through it'), doc: 'OUTSIDE / IN_GUEST / EXITING_GUEST_MODE (Dekker pair with requests)' },
  { name: 'entering', prot: ATOMIC, doc: '1 from the request check before a flush until IN_GUEST_MODE (halt waits for it)' },
  { name: 'requests', prot: ATOMIC, doc: 'KVM_REQ_* bitmap' },
  { name: 'blocked', prot: ATOMIC, doc: '1 while in kvm_vcpu_block (WFI)' },
  { name: 'wake', prot: ATOMIC, doc: 'doorbell: set by a waker while blocked' },
  { name: 'parked', prot: ATOMIC, doc: '1 while asleep in Atomics.wait on `wake`' },
  { name: 'pause', prot: ATOMIC, doc: 'kvm_arm_halt_guest: paused' },
  { name: 'signal', prot: ATOMIC, doc: 'signal for the vCPU thread: 0 none, 1 pending, 2 KVM_RUN returned -EINTR and the thread waits in userspace for resume (SIG_*)' },
  // The kernel's KVM_ARCH_FLAG_HAS_RAN_ONCE, set under config_lock (kvm_arch_vcpu_run_pid_change)
  // and tested with test_bit: per vCPU here, by its own thread, still under config_lock.
  { name: 'ranOnce', prot: lockedRacyRead('kvm_vm_has_ran_once is a test_bit without the lock; the vCPU re-reads its own flag at each KVM_RUN, and vgic_create reads it holding config_lock', 'config_lock'), doc: 'has entered KVM_RUN once' },
  { name: 'vcpuId', prot: KVM_INIT, doc: "vcpu_id: the id userspace chose at KVM_CREATE_VCPU (this record's index is vcpu_idx, the creation order)" },
  { name: 'mpidr', prot: KVM_INIT, doc: 'affinity Aff2.Aff1.Aff0, from vcpu_id (reset_mpidr)' },
  { name: 'irqLine', prot: ATOMIC, doc: 'KVM_IRQ_LINE CPU type: virtual IRQ line' },
  { name: 'fiqLine', prot: ATOMIC, doc: 'KVM_IRQ_LINE CPU type: virtual FIQ line' },
  { name: 'nrLr', prot: KVM_INIT, doc: 'number of list registers' },
  { name: 'usedLrs', prot: vcpuOwnerRacyRead('kvm_arm_halt_guest polls it (Atomics.load, halt.ts isHalted): non-zero inside KVM_RUN means an entry is not yet folded'), doc: 'LRs populated at the last flush' },
  { name: 'uie', prot: VCPU_OWNER, doc: 'underflow maintenance requested at the last flush' },
  { name: 'npie', prot: VCPU_OWNER, doc: 'mainline: no-pending maintenance (more pending IRQs than LRs) at the last flush' },
  { name: 'lrenpie', prot: VCPU_OWNER, doc: 'mainline: EOIcount maintenance (active IRQs outside the LRs) at the last flush' },
  { name: 'tdir', prot: VCPU_OWNER, doc: 'mainline: ICH_HCR.TDIR, DIR traps (actives outside the LRs, or SPIs in flight)' },
  { name: 'prunedAt', prot: VCPU_OWNER, doc: 'history runs: the history seq when the last fold and prune began (the ap_list quiescence audit)' },
  { name: 'pmr', prot: vcpuOwnerRacyRead('kvm_vgic_vcpu_pending_irq reads another vCPU\'s saved VMCR (vgic_kick_vcpus): a stale PMR costs one spurious kick or none where its owner re-evaluates at its next entry'), doc: 'VMCR.PMR (8-bit)' },
  { name: 'bpr0', prot: VCPU_OWNER, doc: 'VMCR.BPR0' },
  { name: 'bpr1', prot: VCPU_OWNER, doc: 'VMCR.BPR1' },
  { name: 'eng0', prot: VCPU_OWNER, doc: 'VMCR.ENG0 (group 0 enable)' },
  { name: 'eng1', prot: VCPU_OWNER, doc: 'VMCR.ENG1 (group 1 enable)' },
  { name: 'eoiMode', prot: VCPU_OWNER, doc: 'VMCR.EOIM: 1 = split priority drop / deactivate' },
  { name: 'cbpr', prot: VCPU_OWNER, doc: 'VMCR.CBPR' },
  { name: 'ackCtl', prot: VCPU_OWNER, doc: 'v2 GICC_CTLR.AckCtl' },
  { name: 'fiqEn', prot: VCPU_OWNER, doc: 'v2 GICC_CTLR.FIQEn' },
  { name: 'ap0r', prot: VCPU_OWNER, doc: 'group 0 active priorities, one bit per preemption level' },
  { name: 'ap1r', prot: VCPU_OWNER, doc: 'group 1 active priorities' },
  { name: 'eoiCount', prot: VCPU_OWNER, doc: 'ICH_HCR.EOIcount' },
  { name: 'rdRegion', prot: CONFIG_INIT, doc: 'v3: index of the redistributor region holding this vCPU, -1' },
  { name: 'rdIndex', prot: CONFIG_INIT, doc: 'v3: slot within that region' },
  { name: 'gicrCtlr', prot: ATOMIC, doc: 'v3: GICR_CTLR shadow' },
  { name: 'rdBase', prot: CONFIG_INIT, kind: 'f64', doc: 'v3: redistributor frame base, -1 if not placed' },
  { name: 'pendbaserLo', prot: ATOMIC, doc: 'v3: GICR_PENDBASER [31:0]' },
  { name: 'pendbaserHi', prot: ATOMIC, doc: 'v3: GICR_PENDBASER [63:32]' },
  { name: 'lr', elem: LR, words: 16 * 8, doc: 'list registers (LR layout x 16)' },
  { name: 'timerEnabled', prot: VCPU_OWNER, doc: 'kvm_timer_enable done (first run): the timer PPIs are owned and HW-mapped' },
  { name: 'timerDeadline', prot: VCPU_OWNER, kind: 'f64', doc: "physical counter value at which a timer raises its host PPI; Infinity if none can" },
  { name: 'timers', elem: TIMER_CTX, words: NR_VCPU_TIMERS * TIMER_CTX.size, doc: 'arch timer contexts (TIMER_CTX x NR_VCPU_TIMERS)' },
  { name: 'exits', prot: STATS, words: EXIT_REASONS.length, doc: 'exit counters by reason' },
  { name: 'counters', prot: STATS, words: VCPU_COUNTERS.length, doc: 'statistics counters (VCPU_COUNTERS)' },
]);
if (VCPU.off.lr + MAX_LRS * LR.size > VCPU.off.exits) throw new Error('VCPU.lr too small for LR layout');

export const MAX_RDIST_REGIONS = 8;

/** One v3 redistributor region (KVM_VGIC_V3_ADDR_TYPE_REDIST[_REGION]). */
export const RDIST_REGION = vmLayout('rdist_region', [
  { name: 'base', prot: CONFIG_INIT, kind: 'f64', doc: 'guest physical base' },
  { name: 'count', prot: CONFIG_INIT, doc: 'number of redistributors it can hold (0 = legacy: as many as vCPUs)' },
  { name: 'freeIndex', prot: CONFIG_INIT, doc: 'next free redistributor slot' },
  { name: 'index', prot: CONFIG_INIT, doc: 'region index' },
]);

/** Distributor and VM-wide state (struct vgic_dist plus the kvm fields the vgic uses). */
export const DIST = vmLayout('vgic_dist', [
  { name: 'kvmLock', kind: 'lock', words: 2, doc: 'kvm->lock (mutex)' },
  { name: 'configLock', kind: 'lock', words: 2, doc: 'kvm->arch.config_lock (mutex)' },
  { name: 'distLock', kind: 'lock', words: 2, doc: "2014 design's dist->lock; used in locking: 'global'" },
  { name: 'stop', prot: ATOMIC, doc: 'teardown: non-zero once the VM is being destroyed' },
  { name: 'stopSeq', prot: ATOMIC, doc: 'history seq + 1 at the first stopVmNow (0: none): where the part of a run its schedule decides ends' },
  { name: 'dead', prot: atomicRacyRead('kvm->vm_dead is read plainly at KVM_RUN entry and at every VM or vCPU ioctl (checkVmUsable, KVM_IRQ_LINE), as kvm_vcpu_ioctl and kvm_vm_ioctl do: a stale 0 lets one more call in, which teardown stops anyway'), doc: 'KVM_REQ_VM_DEAD was raised: every ioctl fails with EIO' },
  { name: 'model', prot: CONFIG_INIT, doc: '0 = none, 2 = GICv2, 3 = GICv3' },
  { name: 'inKernel', prot: CONFIG_INIT, doc: 'a vgic device was created' },
  { name: 'initialized', prot: CONFIG_INIT, doc: 'vgic_init done' },
  { name: 'ready', prot: CONFIG_INIT, doc: 'kvm_vgic_map_resources done' },
  // Writes are Atomics everywhere; v3 also takes config_lock (vgic_mmio_write_v3_misc), v2 does
  // not (vgic_mmio_write_v2_misc): so the rule is 'atomic', not config_lock.
  { name: 'enabled', prot: atomicRacyRead('the pending oracle reads dist->enabled without a lock (vgic_target_oracle, vgic_kick_vcpus): enabling kicks every vCPU with work queued, so a stale 0 is redone'), doc: 'distributor enable (GICD_CTLR)' },
  { name: 'activeSpis', prot: atomicRacyRead('the flush reads it plainly, as the kernel\'s atomic_read() in vgic_v3_configure_hcr is a plain load: only a hint for TDIR; the 0 -> 1 change kicks every vCPU after a request (kickAllVcpus), so a stale 0 is re-read at the re-flush, and a stale non-zero costs one needless DIR trap'), doc: 'mainline: SPIs in flight (dist->active_spis); non-zero sets TDIR everywhere' },
  { name: 'nrSpis', prot: CONFIG_INIT, doc: 'number of SPIs (NR_IRQS - 32), 0 until chosen' },
  { name: 'implRev', prot: CONFIG_INIT, doc: 'GICD_IIDR revision' },
  { name: 'v2GroupsUserWritable', prot: CONFIG_INIT, doc: 'IIDR was written by userspace (v2)' },
  { name: 'onlineVcpus', prot: atomicRacyRead('atomic_read(&kvm->online_vcpus) is a relaxed read in the kernel too: the count only grows, under kvm->lock, once the vCPU is complete'), doc: 'vCPUs fully created' },
  { name: 'createdVcpus', prot: lockedRacyRead('vgic_init compares it with online_vcpus holding only config_lock, as the kernel does with kvm->created_vcpus: a creation in flight makes them differ and init refuses (EBUSY)', 'kvm->lock'), doc: 'vCPUs whose creation has started' },
  { name: 'nrRdistRegions', prot: CONFIG_INIT, doc: 'number of redistributor regions' },
  { name: 'rdistStyle', prot: CONFIG_INIT, doc: '0 unset, 1 legacy REDIST, 2 REDIST_REGION' },
  { name: 'vmToken', prot: initUnder(), doc: "this VM's identity as an eventfd wake-up owner (eventfd/wakeup.ts), > 0" },
  { name: 'irqfdHiwater', prot: ATOMIC, doc: 'irqfd slots ever used (scans stop here)' },
  { name: 'irqfdResamplers', prot: ATOMIC, doc: 'active resampling irqfds: 0 lets the ack path skip its scan' },
  { name: 'irqfdWork', prot: ATOMIC, doc: 'atomic counter: bumped after each work item handed to the irqfd injector (its controlled-mode doorbell)' },
  { name: 'lpiLock', kind: 'lock', words: 2, doc: 'the LPI table lock (dist->lpi_xa): LPI allocation and release' },
  { name: 'propbaserLo', prot: ATOMIC, doc: 'GICR_PROPBASER [31:0] (one VM-wide value, as KVM keeps it)' },
  { name: 'propbaserHi', prot: ATOMIC, doc: 'GICR_PROPBASER [63:32]' },
  { name: 'nrIts', prot: KVM_INIT, doc: 'ITS devices created (instances 0 .. nrIts-1)' },
  { name: 'nrRoutes', prot: ROUTING_SEQLOCK, doc: 'entries in the GSI routing table; -1 = the default table (GSI n -> SPI n+32)' },
  { name: 'routeSeq', prot: ATOMIC, doc: 'seqlock of the routing table: odd while KVM_SET_GSI_ROUTING rewrites it' },
  { name: 'distBase', prot: CONFIG_INIT, kind: 'f64', doc: 'distributor base, -1 = VGIC_ADDR_UNDEF' },
  { name: 'cpuBase', prot: CONFIG_INIT, kind: 'f64', doc: 'v2 CPU interface base, -1 = undef' },
  { name: 'timerPpis', prot: CONFIG_INIT, words: 4, doc: 'arch timer PPIs, VM-wide, by KVM_ARM_VCPU_TIMER_IRQ_* (kvm->arch.timer_data.ppi)' },
  { name: 'timerPpisImmutable', prot: locked('config_lock'), doc: 'KVM_ARCH_FLAG_TIMER_PPIS_IMMUTABLE: a vCPU has run, the PPIs are fixed' },
  { name: 'timerClock', prot: initUnder(), doc: '0: the counter follows the host monotonic clock; 1: the controlled schedule' },
  // Written by KVM_SET_ONE_REG (CNTVCT, one vCPU's mutex: timer_set_offset) or by
  // KVM_ARM_SET_COUNTER_OFFSET (kvm->lock); read lock-free by every vCPU, as in the kernel.
  { name: 'timerVoffset', prot: initUnder('kvm->lock', 'vcpu->mutex'), kind: 'f64', doc: 'CNTVOFF: virtual counter = physical counter - this (VM-wide)' },
  { name: 'timerPoffset', prot: initUnder('kvm->lock', 'vcpu->mutex'), kind: 'f64', doc: 'physical timer offset (0 unless userspace wrote KVM_REG_ARM_PTIMER_CNT)' },
  { name: 'regions', elem: RDIST_REGION, words: MAX_RDIST_REGIONS * RDIST_REGION.size, doc: 'redistributor regions' },
  { name: 'waitingOn', prot: ATOMIC, words: 80, doc: 'per thread slot: lock word+1 it is parked on (watchdog)' },
]);

export const MAX_THREAD_SLOTS = 80;

/**
 * One irqfd (struct kvm_kernel_irqfd), in a fixed table of NR_IRQFDS. The VMM's main thread owns
 * assignment (KVM_IRQFD is an ioctl); any thread reads it. `state` + `gen` + `inflight` are the
 * SRCU of the kernel: a reader enters (inflight++), then checks state and gen; shutdown sets state
 * first, then waits for inflight to drain. Sequentially consistent Atomics make that a Dekker
 * pair: either the reader sees SHUTDOWN, or shutdown sees the reader and waits for it.
 */
export const IRQFD = vmLayout('irqfd', [
  { name: 'state', prot: ATOMIC, doc: 'IRQFD_FREE / IRQFD_ACTIVE / IRQFD_SHUTDOWN / IRQFD_HUP' },
  { name: 'gen', prot: ATOMIC, doc: 'bumped at every assign of this slot: a stale wake-up or poller compares it' },
  { name: 'gsi', prot: { by: 'owner', owner: 'main', racyRead: 'written before `state` publishes the slot (Atomics.store); a reader reads it inside its inflight section, after it saw ACTIVE' }, doc: 'GSI (SPI INTID - 32)' },
  { name: 'resample', prot: { by: 'owner', owner: 'main', racyRead: 'written before `state` publishes the slot (Atomics.store); a reader reads it inside its inflight section, after it saw ACTIVE' }, doc: '1 with KVM_IRQFD_FLAG_RESAMPLE' },
  { name: 'inflight', prot: ATOMIC, doc: 'threads inside an injection or resample signal for this irqfd' },
  { name: 'consumed', prot: STATS, doc: 'eventfd counts consumed (sum of the values read)' },
  { name: 'fastInjections', prot: STATS, doc: 'injections by the atomic fast path, in the writer thread' },
  { name: 'slowInjections', prot: STATS, doc: 'injections by the injector worker (the work item)' },
  { name: 'dropped', prot: STATS, doc: 'injections the vgic refused (no such SPI, vgic torn down)' },
  { name: 'resamples', prot: STATS, doc: 'times its resamplefd was signalled (one per EOI of its GSI)' },
]);
export const NR_IRQFDS = 64;
export const IRQFD_FREE = 0;
export const IRQFD_ACTIVE = 1;
export const IRQFD_SHUTDOWN = 2;
/** Its eventfd was closed in a thread that cannot shut it down: the VMM thread reaps it. */
export const IRQFD_HUP = 3;

/**
 * One physical interrupt line of a (VFIO-like) device: the host side that KVM forwards. `state`
 * holds the bits below and changes only by compareExchange, because forwarding must switch
 * atomically against a raise in flight (see kvm/vfio/forward.ts).
 */
export const PHYS_IRQ = vmLayout('phys_irq', [
  { name: 'state', prot: ATOMIC, doc: 'PIRQ_* bits' },
  { name: 'doorbell', prot: ATOMIC, doc: 'bumped and notified whenever the device thread must look again' },
  { name: 'used', prot: ATOMIC, doc: 'owner generation (> 0) while a device owns this line, 0 when free' },
  { name: 'bell', prot: initUnder(), doc: "line index whose doorbell the owning device sleeps on (its first line)" },
  { name: 'ctlAck', prot: ATOMIC, doc: 'first line only: control messages the device thread has applied' },
  { name: 'devState', prot: ATOMIC, doc: 'first line only: 0 starting, 1 the device thread runs, 2 it has exited (DEV_*)' },
  { name: 'level', prot: initUnder(), doc: '1 = level-triggered line, 0 = edge' },
  { name: 'vintid', prot: lockedRacyRead('read by the device thread while forwarded', 'kvm->lock'), doc: 'while forwarded: the guest INTID it is mapped to' },
  { name: 'raised', prot: STATS, doc: 'device events generated' },
  { name: 'signalled', prot: STATS, doc: 'trigger eventfd signals (host interrupts delivered to VFIO)' },
  { name: 'serviced', prot: STATS, doc: 'events completed: unmask after resample, or physical deactivation' },
  { name: 'hwDeactivations', prot: STATS, doc: 'completed by the guest through a HW-mapped LR (forwarded)' },
  { name: 'unmasks', prot: STATS, doc: 'VFIO unmasks (action or unmask eventfd)' },
]);
export const NR_PHYS_IRQS = 32;
/** PHYS_IRQ.devState: the device thread runs / has exited (written from its exit handler). */
export const DEV_RUNNING = 1;
export const DEV_EXITED = 2;
/** Physical INTID of line i: host SPIs from here (what a HW LR's pINTID carries). */
export const PHYS_INTID_BASE = 64;
/** The device asserts its line. */
export const PIRQ_LINE = 1;
/** VFIO mask: automasked when a level interrupt was signalled, or masked by the user. */
export const PIRQ_MASKED = 2;
/** Physical active: delivered and not yet deactivated (forwarded: by the guest). */
export const PIRQ_ACTIVE = 4;
/** Forwarded: HW-mapped to a guest SPI, no automask. */
export const PIRQ_FWD = 8;
/** The user masked it (VFIO_IRQ_SET_ACTION_MASK), as opposed to the automask. */
export const PIRQ_USER_MASKED = 16;

/** LPIs modelled: INTIDs 8192 .. 8192 + MAX_LPIS - 1 (GICD_TYPER.IDbits allows more; a table bound). */
export const LPI_BASE = 8192;
export const MAX_LPIS = 1024;

/** One ITS device (struct its_device). */
export const ITS_DEVICE = vmLayout('its_device', [
  { name: 'valid', prot: ITS_LOCKED, doc: '1 while mapped (MAPD V=1)' },
  { name: 'deviceId', prot: ITS_LOCKED, doc: 'DeviceID' },
  { name: 'ittLo', prot: ITS_LOCKED, doc: 'ITT address [31:0]' },
  { name: 'ittHi', prot: ITS_LOCKED, doc: 'ITT address [51:32]' },
  { name: 'eventBits', prot: ITS_LOCKED, doc: 'num_eventid_bits (MAPD size + 1)' },
  { name: 'iteHead', prot: ITS_LOCKED, doc: 'first ITE slot of this device, -1 if none' },
]);
/** One interrupt translation entry (struct its_ite). */
export const ITS_ITE = vmLayout('its_ite', [
  { name: 'valid', prot: ITS_LOCKED, doc: '1 while mapped' },
  { name: 'dev', prot: ITS_LOCKED, doc: 'device slot' },
  { name: 'eventId', prot: ITS_LOCKED, doc: 'EventID' },
  { name: 'icid', prot: ITS_LOCKED, doc: 'collection ID' },
  { name: 'lpi', prot: ITS_LOCKED, doc: 'LPI INTID (the record holds one reference for this ITE)' },
  { name: 'next', prot: ITS_LOCKED, doc: "next ITE slot of the same device, -1 at the end" },
]);
/** One collection (struct its_collection). */
export const ITS_COLLECTION = vmLayout('its_collection', [
  { name: 'valid', prot: ITS_LOCKED, doc: '1 while it exists' },
  { name: 'icid', prot: ITS_LOCKED, doc: 'collection ID' },
  { name: 'target', prot: ITS_LOCKED, doc: 'target vCPU id (GITS_TYPER.PTA = 0), -1 = COLLECTION_NOT_MAPPED' },
]);
/**
 * One translation-cache entry: (DeviceID, EventID) -> LPI record, holding a reference. Written
 * under its_lock with `seq` odd while it changes (a seqlock); read lock-free by the irqfd fast path.
 */
export const ITS_CACHE = vmLayout('its_cache_entry', [
  { name: 'seq', prot: ATOMIC, doc: 'seqlock: odd while being written' },
  { name: 'valid', prot: ITS_SEQLOCK, doc: '1 if it holds a translation' },
  { name: 'deviceId', prot: ITS_SEQLOCK, doc: 'DeviceID' },
  { name: 'eventId', prot: ITS_SEQLOCK, doc: 'EventID' },
  { name: 'record', prot: ITS_SEQLOCK, doc: 'LPI record index' },
  { name: 'gen', prot: ITS_SEQLOCK, doc: "the record's lpiGen when cached" },
]);
export const MAX_ITS = 4;
export const NR_ITS_DEVICES = 64;
export const NR_ITES = 1024;
export const NR_COLLECTIONS = 64;
export const NR_ITS_CACHE = 64;

/** One ITS instance (struct vgic_its) with its tables. */
export const ITS = vmLayout('vgic_its', [
  { name: 'cmdLock', kind: 'lock', words: 2, doc: 'its->cmd_lock (mutex): CBASER/CREADR/CWRITER and command processing' },
  { name: 'itsLock', kind: 'lock', words: 2, doc: 'its->its_lock (mutex): devices, ITEs, collections, translation' },
  { name: 'created', prot: KVM_INIT, doc: '1 once KVM_CREATE_DEVICE made it' },
  { name: 'initialized', prot: KVM_INIT, doc: 'its CTRL_INIT was done (it is registered at its frame)' },
  // Written under cmd_lock (vgic_mmio_write_its_ctlr) or by vgic_its_reset with every vCPU
  // locked (no cmd_lock, as CMD_REG); read under its_lock by the MSI path.
  { name: 'enabled', prot: lockedEitherRacyRead('vgic_its_trigger_msi reads it holding its_lock, not cmd_lock, as the kernel does: a translation racing a disable ends as if before or after it, and the disable then invalidates the cache', ['cmd_lock'], USERSPACE_ALL_VCPUS), doc: 'GITS_CTLR.Enabled' },
  { name: 'abiRev', prot: KVM_INIT, doc: 'table ABI revision (GITS_IIDR.Revision)' },
  { name: 'cbaserLo', prot: CMD_REG, doc: 'GITS_CBASER [31:0]' },
  { name: 'cbaserHi', prot: CMD_REG, doc: 'GITS_CBASER [63:32]' },
  { name: 'creadr', prot: CMD_REG, doc: 'GITS_CREADR offset' },
  { name: 'cwriter', prot: CMD_REG, doc: 'GITS_CWRITER offset' },
  // Every access is an Atomics load or store of one half (reg64/setReg64). No ITS lock orders the
  // writes: vgic_mmio_write_its_baser stores the register with none (its_lock only around
  // freeing the table when Valid goes), as do the userspace restore (every vCPU locked) and
  // vgic_its_reset (its_lock).
  { name: 'baser0Lo', prot: ATOMIC, doc: 'GITS_BASER0 (device table) [31:0]' },
  { name: 'baser0Hi', prot: ATOMIC, doc: 'GITS_BASER0 [63:32]' },
  { name: 'baser1Lo', prot: ATOMIC, doc: 'GITS_BASER1 (collection table) [31:0]' },
  { name: 'baser1Hi', prot: ATOMIC, doc: 'GITS_BASER1 [63:32]' },
  { name: 'cacheHand', prot: ITS_LOCKED, doc: 'next translation-cache slot to replace (round robin)' },
  { name: 'base', prot: KVM_INIT, kind: 'f64', doc: 'frame base (128 KiB), -1 = undefined' },
  { name: 'devices', elem: ITS_DEVICE, words: NR_ITS_DEVICES * ITS_DEVICE.size, doc: 'device table' },
  { name: 'ites', elem: ITS_ITE, words: NR_ITES * ITS_ITE.size, doc: 'ITE pool' },
  { name: 'collections', elem: ITS_COLLECTION, words: NR_COLLECTIONS * ITS_COLLECTION.size, doc: 'collections' },
  { name: 'cache', elem: ITS_CACHE, words: NR_ITS_CACHE * ITS_CACHE.size, doc: 'translation cache' },
]);

/** One GSI routing entry (struct kvm_irq_routing_entry). */
export const ROUTE = vmLayout('irq_route', [
  { name: 'gsi', prot: ROUTING_SEQLOCK, doc: 'GSI' },
  { name: 'type', prot: ROUTING_SEQLOCK, doc: 'KVM_IRQ_ROUTING_IRQCHIP (1) or KVM_IRQ_ROUTING_MSI (2)' },
  { name: 'pin', prot: ROUTING_SEQLOCK, doc: 'irqchip: pin (SPI INTID - 32)' },
  { name: 'addrLo', prot: ROUTING_SEQLOCK, doc: 'msi: doorbell address [31:0]' },
  { name: 'addrHi', prot: ROUTING_SEQLOCK, doc: 'msi: doorbell address [63:32]' },
  { name: 'data', prot: ROUTING_SEQLOCK, doc: 'msi: data (EventID)' },
  { name: 'flags', prot: ROUTING_SEQLOCK, doc: 'msi: KVM_MSI_VALID_DEVID' },
  { name: 'devid', prot: ROUTING_SEQLOCK, doc: 'msi: DeviceID' },
]);
export const NR_ROUTES = 256;
