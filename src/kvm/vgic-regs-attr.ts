// Register attribute groups: wired to the register frames once they land (same session).
import { kvmErr } from './errno.js';
import type { Host } from '../vgic/host.js';
export function regsSetAttr(_h: Host, group: number, _attr: bigint, _val: bigint): void {
  kvmErr('ENXIO', `group ${group} not available yet`);
}
export function regsGetAttr(_h: Host, group: number, _attr: bigint): bigint {
  kvmErr('ENXIO', `group ${group} not available yet`);
}
export function regsHasAttr(_h: Host, group: number, _attr: bigint): void {
  kvmErr('ENXIO', `group ${group} not available yet`);
}
