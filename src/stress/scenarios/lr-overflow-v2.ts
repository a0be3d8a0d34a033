/** lr-overflow on a GICv2 (GICD ITARGETSR routing, the GICV frame, the v2 LR fold). */
import type { ScenarioInfo } from '../scenario.js';
import { info as v3 } from './lr-overflow.js';

export { check, driver, guest } from './lr-overflow.js';

export const info: ScenarioInfo = { ...v3, name: 'lr-overflow-v2', gic: 'v2' };
