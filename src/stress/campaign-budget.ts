/**
 * Spreading a campaign over several scenarios by what each has found and covered, not evenly: a
 * deterministic UCB1 bandit. The campaign runs in epochs of EPOCH_RUNS run indices; the scenarios
 * of an epoch's runs are decided from the results of the epochs before it, taken in run-index
 * order, so that --jobs changes nothing (the lanes wait at each epoch's end). A run's reward is
 * what it added: lifecycle transitions its scenario had not shown before (signature.ts), and a
 * kind of finding not seen before, which weighs more.
 */
import type { StressRunReport } from './runner.js';

export const EPOCH_RUNS = 8;
/** A new kind of finding is worth this many new transitions. */
const FINDING_WEIGHT = 16;
/** Exploration weight of UCB1 (rewards are of the order of a few new transitions per run). */
const EXPLORE = 2;

interface Arm {
  runs: number;
  reward: number;
  seen: Set<number>;
  findings: Set<string>;
}

export interface ScenarioBudget {
  scenario: string;
  runs: number;
  /** Transitions covered so far. */
  covered: number;
  findings: string[];
  /** Mean reward per run. */
  meanReward: number;
}

export class Budget {
  private readonly arms: Arm[];

  constructor(readonly scenarios: readonly string[]) {
    this.arms = scenarios.map(() => ({ runs: 0, reward: 0, seen: new Set(), findings: new Set() }));
  }

  /** Account for one finished run (call in run-index order). */
  add(scenarioIndex: number, r: Pick<StressRunReport, 'signature' | 'findings'>): void {
    const a = this.arms[scenarioIndex]!;
    let reward = 0;
    for (const id of r.signature) {
      if (!a.seen.has(id)) {
        a.seen.add(id);
        reward++;
      }
    }
    for (const f of r.findings) {
      if (!a.findings.has(f.kind)) {
        a.findings.add(f.kind);
        reward += FINDING_WEIGHT;
      }
    }
    a.runs++;
    a.reward += reward;
  }

  /** The scenario (index) of each of the next epoch's `n` runs. */
  allocate(n: number): number[] {
    const planned = this.arms.map((a) => a.runs);
    const total = planned.reduce((x, y) => x + y, 0);
    const out: number[] = [];
    for (let j = 0; j < n; j++) {
      let best = 0;
      let bestScore = -Infinity;
      for (let s = 0; s < this.arms.length; s++) {
        const a = this.arms[s]!;
        // Never run: first (in scenario order). Otherwise mean reward plus the exploration bonus,
        // with the runs already planned in this epoch counted, so one epoch spreads.
        const score = planned[s] === 0 ? Infinity : (a.runs ? a.reward / a.runs : 0) + EXPLORE * Math.sqrt(Math.log(total + j + 1) / planned[s]!);
        if (score > bestScore) {
          best = s;
          bestScore = score;
        }
      }
      planned[best]!++;
      out.push(best);
    }
    return out;
  }

  summary(): ScenarioBudget[] {
    return this.arms.map((a, i) => ({ scenario: this.scenarios[i]!, runs: a.runs, covered: a.seen.size, findings: [...a.findings], meanReward: a.runs ? a.reward / a.runs : 0 }));
  }
}
