/** Finding a scenario (a built-in's name or a module path) and loading its module. */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distPath } from '../../kvm/worker-path.js';
import type { ScenarioModule } from '../scenario.js';
import { BUILTIN_SCENARIOS } from '../scenarios/index.js';

export function isBuiltinScenario(name: string): boolean {
  return (BUILTIN_SCENARIOS as readonly string[]).includes(name);
}

export function scenarioUrl(name: string): string {
  if (isBuiltinScenario(name)) return pathToFileURL(distPath(`src/stress/scenarios/${name}.js`)).href;
  const p = isAbsolute(name) ? name : resolve(process.cwd(), name);
  if (!existsSync(p)) throw new Error(`unknown scenario '${name}' (built-ins: ${BUILTIN_SCENARIOS.join(', ')})`);
  return pathToFileURL(p).href;
}

export async function loadScenario(name: string): Promise<{ url: string; mod: ScenarioModule }> {
  const url = scenarioUrl(name);
  const mod = (await import(url)) as ScenarioModule;
  if (!mod.info || typeof mod.guest !== 'function' || typeof mod.driver !== 'function') {
    throw new Error(`scenario module ${name} must export info, guest() and driver()`);
  }
  return { url, mod };
}
