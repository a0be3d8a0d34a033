/**
 * The one argument parser of every vgic-emu command (and of the bench scripts): node:util
 * parseArgs in strict mode, driven by a table of flags, plus what parseArgs does not check:
 * choices, and numbers that are finite and within their range (`--seconds 1e-9` is not a run).
 * Unknown flags, stray arguments and bad values are usage errors (exit 2).
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  readonly name: string;
  readonly kind: 'string' | 'number' | 'boolean';
  readonly help: string;
  /** One-letter alias (-h for --help). */
  readonly short?: string;
  readonly choices?: readonly string[];
  readonly default?: string | number | boolean;
  /** Numbers: a whole number. */
  readonly integer?: boolean;
  /** Numbers: inclusive bounds. Without `min` a number must be positive. */
  readonly min?: number;
  readonly max?: number;
}

/** The --help flag every command takes. */
export const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', kind: 'boolean', help: 'show this help' };

export type Flags = Record<string, string | number | boolean | undefined>;

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): Flags {
  return parseCommandLine(argv, specs, false).flags;
}

/** parseFlags for a command that also takes arguments (files): the flags and the positionals. */
export function parseCommandLine(argv: readonly string[], specs: readonly FlagSpec[], allowPositionals = true): { flags: Flags; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const s of specs) options[s.name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', ...(s.short ? { short: s.short } : {}) };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options, strict: true, allowPositionals }));
  } catch (e) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes; its messages name the flag.
    throw new UsageError((e as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, ''));
  }
  const out: Flags = {};
  for (const s of specs) {
    const raw = values[s.name];
    const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (v === undefined) {
      if (s.default !== undefined) out[s.name] = s.default;
      continue;
    }
    if (s.kind === 'boolean') {
      out[s.name] = true;
      continue;
    }
    const val = String(v);
    if (s.choices && !s.choices.includes(val)) throw new UsageError(`--${s.name} must be one of ${s.choices.join(', ')}, got '${val}'`);
    out[s.name] = s.kind === 'number' ? parseNumber(s, val) : val;
  }
  return { flags: out, positionals };
}

function parseNumber(s: FlagSpec, val: string): number {
  const n = val.trim() === '' ? NaN : Number(val);
  const what = s.integer ? 'a whole number' : 'a number';
  if (!Number.isFinite(n)) throw new UsageError(`--${s.name} needs ${what}, got '${val}'`);
  if (s.integer && !Number.isInteger(n)) throw new UsageError(`--${s.name} needs a whole number, got '${val}'`);
  if (s.min === undefined ? n <= 0 : n < s.min) throw new UsageError(`--${s.name} must be ${s.min === undefined ? 'positive' : `at least ${s.min}`}, got '${val}'`);
  if (s.max !== undefined && n > s.max) throw new UsageError(`--${s.name} must be at most ${s.max}, got '${val}'`);
  return n;
}

export function flagHelp(specs: readonly FlagSpec[]): string {
  return specs
    .map((s) => {
      const v = s.kind === 'boolean' ? '' : s.choices ? ` <${s.choices.join('|')}>` : ` <${s.kind}>`;
      const range = s.kind === 'number' && (s.min !== undefined || s.max !== undefined) ? ` [${s.min ?? ''}..${s.max ?? ''}]` : '';
      const d = s.default !== undefined && s.kind !== 'boolean' ? ` (default ${s.default})` : '';
      return `  ${s.short ? `-${s.short}, ` : '    '}--${s.name}${v}`.padEnd(38) + s.help + range + d;
    })
    .join('\n');
}
