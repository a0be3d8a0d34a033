/** The strategies, by their SCHED.strategy number. */
import { defaultStrategy } from './default.js';
import { pct } from './pct.js';
import { randomWalk } from './random.js';
import { replay } from './replay.js';
import { order } from './order.js';
import { STRATEGY_DEFAULT, STRATEGY_ORDER, STRATEGY_PCT, STRATEGY_RANDOM, STRATEGY_REPLAY, type Strategy } from './strategy.js';

export const STRATEGIES: readonly Strategy[] = (() => {
  const a: Strategy[] = [];
  a[STRATEGY_DEFAULT] = defaultStrategy;
  a[STRATEGY_RANDOM] = randomWalk;
  a[STRATEGY_PCT] = pct;
  a[STRATEGY_REPLAY] = replay;
  a[STRATEGY_ORDER] = order;
  return a;
})();

export { defaultStrategy, order, pct, randomWalk, replay };
export { Decision, STRATEGY_DEFAULT, STRATEGY_ORDER, STRATEGY_PCT, STRATEGY_RANDOM, STRATEGY_REPLAY, type Strategy } from './strategy.js';
