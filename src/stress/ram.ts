/**
 * The guest-RAM words stress scenarios share (32-bit word indices). Guests count what they see,
 * the driver counts what it did, and the runner compares.
 */
export const SRAM = {
  /** vCPUs that finished their setup. */
  READY: 0,
  /** Per SPI INTID: accepted injections (driver). */
  ACCEPTED: 1024,
  /** Per SPI INTID: acknowledgements (guests). */
  ACKS: 2048,
  /** Per SPI INTID: generation the driver wrote before injecting. */
  GEN: 3072,
  /** Per SPI INTID: generation a guest saw when it acknowledged. */
  SEEN: 4096,
  /** Per (vCPU, SGI): SGIs acknowledged, at SGI_ACKS + 16 * vcpu + sgi. */
  SGI_ACKS: 5120,
  /** Per (vCPU, SGI): SGIs sent to it, at SGI_SENT + 16 * vcpu + sgi. */
  SGI_SENT: 6144,
  /** Scenario-private words. */
  SCRATCH: 7168,
} as const;
