/** gicd-sweep on a GICv2: banked private INTIDs in the distributor, ITARGETSR, the v2 TYPER. */
import type { ScenarioInfo } from '../scenario.js';
import { info as v3 } from './gicd-sweep.js';

export { check, driver, guest } from './gicd-sweep.js';

export const info: ScenarioInfo = { ...v3, name: 'gicd-sweep-v2', gic: 'v2' };
