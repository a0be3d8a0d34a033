/**
 * How a vCPU names its guest program: a built-in name, a module path/URL, or inline source.
 * Inline source is an ES module text (or use `guestFromFunction`): it is imported in the vCPU
 * worker from a data: URL, so it can capture nothing from the caller's scope.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distPath } from './worker-path.js';
import { BUILTIN_GUESTS } from '../guest/builtins/index.js';

export type GuestRef = string | { readonly source: string };

/** Wrap a self-contained function `(cpu, args) => result` as an inline guest module. */
export function guestFromFunction(fn: (cpu: never, args: never) => unknown): { source: string } {
  return { source: `export default ${fn.toString()};\n//# sourceURL=inline-guest.js\n` };
}

/** Resolve to a URL string the worker can import(). Throws a clear error for unknown names. */
export function resolveGuestUrl(ref: GuestRef): string {
  if (typeof ref === 'object') return `data:text/javascript;base64,${Buffer.from(ref.source).toString('base64')}`;
  if ((BUILTIN_GUESTS as readonly string[]).includes(ref)) return pathToFileURL(distPath(`src/guest/builtins/${ref}.js`)).href;
  if (ref.startsWith('file:') || ref.startsWith('data:')) return ref;
  const p = isAbsolute(ref) ? ref : resolve(process.cwd(), ref);
  if (!existsSync(p)) throw new Error(`guest '${ref}' is neither a built-in (${BUILTIN_GUESTS.join(', ')}) nor an existing module file`);
  return pathToFileURL(p).href;
}
