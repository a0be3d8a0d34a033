/**
 * Guest RAM layout of the lockstat workloads, shared by the guest program (lockstat/guest.ts),
 * the injectors (main thread, device workers) and the report. Int32 word indices, and Float64
 * indices (for the injection timestamps) into the same buffer. Everything sits below the ITS
 * tables of guest/builtins/its-lpi.ts's default layout (0x100000).
 */
export const LS = {
  READY: 0,
  STOP: 1,
  /** vCPU 0 finished configuring the distributor (and the ITS). */
  CONFIGURED: 2,
  /** Acknowledgements per SPI INTID (< 1024), counted after the EOI. */
  SPI_ACKS: 1024,
  /** SGI acknowledgements: SGI_ACKS + 16 * target vCPU + SGI. */
  SGI_ACKS: 2048,
  /** LPI acknowledgements: LPI_ACKS + (INTID - 8192), up to MAX_LPIS. */
  LPI_ACKS: 4096,
  /** Every acknowledgement, per vCPU (the throughput). */
  VCPU_ACKS: 6144,
  /** SGIs sent by vCPU v to v + 1 (its credit against SGI_ACKS). */
  SGI_SENT: 6400,
  /** Inject->ack latency histogram per vCPU: LAT_HIST + v * LAT_BUCKETS + bucket. */
  LAT_HIST: 8192,
} as const;

export const MAX_LPIS = 1024;
export const MAX_VCPUS = 64;
/** Latency buckets: LAT_SUB per octave of nanoseconds (bucket b = [2^(b/LAT_SUB), 2^((b+1)/LAT_SUB)) ns). */
export const LAT_SUB = 4;
export const LAT_BUCKETS = 36 * LAT_SUB;
/** Float64 index of the injection timestamp slots (shared clock, ms). */
export const TS_BASE = 0x20000 / 8;
export const tsSpi = (intid: number): number => TS_BASE + intid;
export const tsSgi = (target: number, sgi: number): number => TS_BASE + 1024 + 16 * target + sgi;
export const tsLpi = (intid: number): number => TS_BASE + 2048 + (intid - 8192);
/** Float64 index of the largest latency seen per vCPU (ns). */
export const LAT_MAX = 0x30000 / 8;
export const RAM_BYTES = 4 << 20;

export function latencyBucket(ns: number): number {
  if (ns < 1) return 0;
  return Math.min(LAT_BUCKETS - 1, Math.floor(Math.log2(ns) * LAT_SUB));
}
/** The geometric middle of a bucket, for percentiles (within ~9% of any sample in it). */
export function bucketValue(b: number): number {
  return Math.round(2 ** ((b + 0.5) / LAT_SUB));
}
