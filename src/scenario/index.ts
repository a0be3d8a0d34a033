/**
 * vgic-emu/scenario: what a stress scenario of your own is written with (the built-in scenarios
 * use the same pieces). A scenario is an ES module exporting
 *
 * - `info` ({@link ScenarioInfo}): its name, and the defaults of a run (vCPUs, GIC, size…);
 * - `guest(cpu, args)`: the guest program every vCPU runs in its own worker thread;
 * - `driver(d, args)`: the VMM side (injections), on a thread of its own ({@link DriverCtx});
 * - optionally `setup(vm, args, phase)` (main thread, before and after the vgic's CTRL_INIT) and
 *   `check(ram, args)`: accounting on guest RAM once every thread has stopped.
 *
 * Run it with `vgic-emu stress --scenario ./my-scenario.mjs`: the module is loaded by path into
 * every vCPU thread and the driver thread, so it must be JavaScript (compile a TypeScript one
 * first) and must not rely on state shared between threads except guest RAM (`cpu.ram`, `d.ram`).
 *
 * Guest RAM words the helpers use are named in {@link SRAM}; a scenario's own counters go from
 * `SRAM.SCRATCH` on.
 * @module
 */
export type { ScenarioModule, ScenarioArgs, ScenarioInfo } from '../stress/scenario.js';
export type { DriverCtx } from '../stress/driver-ctx.js';
export type { GuestCpu } from '../guest/guest-cpu.js';
export { SRAM } from '../stress/ram.js';
export {
  guestPrologue, idleForever, spinForever, waitReady, checkSpiAccounting, spiStormDriver, wireResampleIrqfds, resampleIrqfds,
} from '../stress/scenarios/common.js';
