// PLACEHOLDER: replaced by the GICv3 CPU interface system register table (see helper brief).
import type { GuestCpu } from '../guest/guest-cpu.js';
export type SysregName = string;
export interface SysregDesc {
  readonly name: string;
  readonly trap?: boolean;
  read?(cpu: GuestCpu): bigint;
  write?(cpu: GuestCpu, value: bigint): void;
}
export const SYSREGS_BY_NAME: Map<string, SysregDesc> = new Map();
