/** Built-in stress scenarios (each is scenarios/<name>.ts). */
export const BUILTIN_SCENARIOS = ['spi-storm', 'spin-storm', 'ipi-storm', 'retarget', 'enable-flap', 'level-eoi', 'early-inject', 'irqfd-resample', 'irqfd-shared', 'lpi-refcount', 'timer', 'split-eoi', 'its-churn', 'vmm-ops', 'guest-regs', 'its-cmds', 'vfio-fwd'] as const;
