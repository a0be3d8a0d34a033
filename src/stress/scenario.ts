/**
 * A stress scenario: one module with a guest program (every vCPU runs it), a driver (host-side
 * injections on the driver thread) and optional setup and accounting checks. Built-ins live in
 * scenarios/; a user module with the same exports can be given by path.
 */
import type { GuestCpu } from '../guest/guest-cpu.js';
import type { Vm } from '../kvm/vm.js';
import type { DriverCtx } from './driver-ctx.js';

export interface ScenarioArgs {
  /** Work items for the driver and guests (injections, SGIs, flaps…). */
  iterations: number;
  /** SPIs the scenario uses. */
  spis: number[];
  seed: number;
  /** Whatever setup() hands to the driver (structured-cloned: e.g. EventFd handles). */
  extra?: Record<string, unknown>;
}

export interface ScenarioInfo {
  name: string;
  description: string;
  gic?: 'v2' | 'v3';
  vcpus?: number;
  nrLr?: number;
  iterations?: number;
  spis?: number;
  /**
   * Every SPI of the scenario is driven through an irqfd with a resamplefd: the checker then
   * requires exactly one RESAMPLE per deactivation (spec §8.5).
   */
  resample?: boolean;
  /** The scenario DISCARDs pending LPIs: LPIs are never reported `lost`. */
  discardsLpis?: boolean;
}

export interface ScenarioModule {
  info: ScenarioInfo;
  guest(cpu: GuestCpu, args: ScenarioArgs): unknown;
  driver(d: DriverCtx, args: ScenarioArgs): unknown;
  /** Runs on the main thread before CTRL_INIT/the run (e.g. injection before init). */
  setup?(vm: Vm, args: ScenarioArgs, phase: 'before-init' | 'after-init'): void;
  /** Extra accounting on guest RAM after the run: one message per violation. */
  check?(ram: Int32Array, args: ScenarioArgs): string[];
}
