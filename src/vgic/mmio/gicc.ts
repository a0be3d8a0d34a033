// PLACEHOLDER: replaced by the GICv2 CPU interface frame table (see helper brief).
import type { GuestCpu } from '../../guest/guest-cpu.js';
export function giccRead(_cpu: GuestCpu, _off: number, _len: number): number {
  throw new Error('GICC not implemented yet');
}
export function giccWrite(_cpu: GuestCpu, _off: number, _len: number, _value: number): void {
  throw new Error('GICC not implemented yet');
}
