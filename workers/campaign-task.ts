/** Piscina task: one stress run (one seed). */
import { runStress, type StressRunOptions, type StressRunReport } from '../src/stress/runner.js';

export default function task(opts: StressRunOptions): Promise<StressRunReport> {
  return runStress(opts);
}
