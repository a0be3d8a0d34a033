/**
 * The flag handling the campaign scripts share (npm run stress:campaign, coverage:stress): parse
 * with the CLI's parser, `--help` prints the usage, a usage error prints it on stderr and exits 2,
 * and the `--seed` flag is decoded (decimal or 0x hex).
 */
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec } from '../src/cli/args.js';
import { parseSeed } from '../src/sched/prng.js';

export function parseScriptFlags(script: string, flags: readonly FlagSpec[]): { f: ReturnType<typeof parseFlags>; seed: number } {
  const all = [...flags, HELP_FLAG];
  const usage = `usage: npm run ${script} -- [options]\n\n${flagHelp(all)}\n`;
  let f: ReturnType<typeof parseFlags>;
  let seed: number;
  try {
    f = parseFlags(process.argv.slice(2), all);
    seed = parseSeed(String(f.seed));
  } catch (e) {
    if (!(e instanceof UsageError) && !(e instanceof Error)) throw e;
    process.stderr.write(`${script}: ${e.message}\n\n${usage}`);
    process.exit(2);
  }
  if (f.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return { f, seed };
}
