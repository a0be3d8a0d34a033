/** The default strategy: no preemption at all (the current thread goes on; else the lowest enabled). */
import type { Decision, Strategy } from './strategy.js';

export const defaultStrategy: Strategy = {
  name: 'default',
  next: (d: Decision): number => d.dflt,
};
