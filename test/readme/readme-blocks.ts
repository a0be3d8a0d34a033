/**
 * The README's code blocks, and what each claims. Every ```ts and ```sh block must be preceded
 * (on the line before the fence) by a directive, so that a block added later cannot escape the test:
 *
 *   <!-- readme-test: run -->                     ts: compile under tsc --strict, run, exit 0
 *   <!-- readme-test: run stdout=/regex/ -->      ... and its stdout matches
 *   <!-- readme-test: compile -->                 ts: a fragment or module, type-checked only
 *   <!-- readme-test: sh exit=N stdout=/re/ stderr=/re/ -->   run each line as a command; each
 *                                                 exits N (default 0); the last one's output matches
 *   <!-- readme-test: skip reason... -->          not run (the reason is required)
 *   <!-- readme-test: file NAME -->               js: a file the reader saves as NAME; it is written
 *                                                 into the working directory of every later sh block
 */
export interface ReadmeBlock {
  lang: string;
  line: number;
  code: string;
  mode: 'run' | 'compile' | 'sh' | 'skip' | 'file' | 'none';
  exit: number;
  stdout?: RegExp;
  stderr?: RegExp;
  reason?: string;
  /** file blocks: the name it is saved as. */
  name?: string;
}

const DIRECTIVE = /^<!--\s*readme-test:\s*(run|compile|sh|skip|file)\b(.*?)-->\s*$/;

function regexOpt(rest: string, name: string): RegExp | undefined {
  const m = new RegExp(`${name}=/((?:\\\\/|[^/])+)/`).exec(rest);
  return m ? new RegExp(m[1]!, 'm') : undefined;
}

export function readmeBlocks(text: string): ReadmeBlock[] {
  const lines = text.split('\n');
  const out: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const lang = fence[1]!;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (lang !== 'ts' && lang !== 'sh' && lang !== 'js') continue;
    const d = DIRECTIVE.exec(lines[start - 1] ?? '');
    const mode = (d?.[1] ?? 'none') as ReadmeBlock['mode'];
    const rest = d?.[2] ?? '';
    out.push({
      lang, line: start + 1, code: body.join('\n'), mode,
      exit: Number(/exit=(\d+)/.exec(rest)?.[1] ?? 0),
      stdout: regexOpt(rest, 'stdout'), stderr: regexOpt(rest, 'stderr'),
      reason: mode === 'skip' ? rest.trim() : undefined,
      name: mode === 'file' ? rest.trim() : undefined,
    });
  }
  return out;
}
