/** dist-flap on a GICv2 (GICD_CTLR.Enable, ITARGETSR routing, the v2 CPU interface). */
import type { ScenarioInfo } from '../scenario.js';
import { info as v3 } from './dist-flap.js';

export { check, driver, guest } from './dist-flap.js';

export const info: ScenarioInfo = { ...v3, name: 'dist-flap-v2', gic: 'v2' };
