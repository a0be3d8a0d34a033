/**
 * vgic-emu/stress: the stress tester as a library (what `vgic-emu stress` runs): runs and
 * campaigns, schedule files and the minimiser, scenario modules, the bug seeds, the history
 * checker and the PRNG.
 */
export { runStress, type StressRunOptions, type StressRunReport, type StressMode, type Strategy } from './runner.js';
export { runCampaign, runSeed, type CampaignOptions, type CampaignResult } from './campaign.js';
export { minimiseSchedule, type MinimiseResult } from './minimise.js';
export { readScheduleFile, writeScheduleFile, toScheduleFile, fileSwitches, scheduleMismatch, SCHEDULE_FORMAT, SCHEDULE_VERSION, type ScheduleFile, type ScheduleConfig } from './schedule-file.js';
export type { ScenarioModule, ScenarioArgs, ScenarioInfo } from './scenario.js';
export type { DriverCtx } from './driver-ctx.js';
export type { Finding, FindingKind } from './findings.js';
export { BUILTIN_SCENARIOS } from './scenarios/index.js';
export { BUG, BUG_INFO, type BugName, type BugInfo } from '../vgic/bugs.js';
export { checkHistory, formatViolation, type Violation } from '../check/checker.js';
export { createHistory, readHistory, type HistoryBuffers } from '../record/history.js';
export { Prng, deriveSeed, parseSeed, formatSeed } from '../sched/prng.js';
export { setSchedHook, SchedPoint, type SchedHook } from '../sync/sched.js';
