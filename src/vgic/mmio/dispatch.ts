// PLACEHOLDER: replaced by the register-frame implementation (see helper brief).
import type { Host } from '../host.js';
export function vgicMmioRead(_h: Host, _v: number, _gpa: number, _len: number): number {
  throw new Error('vgic MMIO not implemented yet');
}
export function vgicMmioWrite(_h: Host, _v: number, _gpa: number, _len: number, _value: number): void {
  throw new Error('vgic MMIO not implemented yet');
}
export function vgicRedistOwner(_h: Host, _gpa: number): number {
  return -1;
}
