/** The smallest guest: returns its vCPU id at once. */
import type { GuestCpu } from '../guest-cpu.js';

export default function idle(cpu: GuestCpu): number {
  return cpu.id;
}
