/** A small, strict argument parser: unknown flags and bad values are usage errors (exit 2). */
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
  readonly choices?: readonly string[];
  readonly default?: string | number | boolean;
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const s of specs) if (s.default !== undefined) out[s.name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq >= 0 ? eq : undefined);
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (spec.kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    const val = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (val === undefined) throw new UsageError(`--${name} needs a value`);
    if (spec.choices && !spec.choices.includes(val)) throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}`);
    if (spec.kind === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} needs a positive number, got '${val}'`);
      out[name] = n;
    } else out[name] = val;
  }
  return out;
}

export function flagHelp(specs: readonly FlagSpec[]): string {
  return specs
    .map((s) => {
      const v = s.kind === 'boolean' ? '' : s.choices ? ` <${s.choices.join('|')}>` : ` <${s.kind}>`;
      const d = s.default !== undefined && s.kind !== 'boolean' ? ` (default ${s.default})` : '';
      return `  --${s.name}${v}`.padEnd(34) + s.help + d;
    })
    .join('\n');
}
