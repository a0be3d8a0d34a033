/**
 * The CLI conventions, on the built bin in child processes: --version, -h/--help on every
 * command (exit 0, stdout), a usage error prints that command's usage on stderr (exit 2), number
 * flags are validated, and a closed pipe (`vgic-emu layout | head`) exits quietly.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { distPath } from '../../src/kvm/worker-path.js';
import { parseFlags, UsageError, type FlagSpec } from '../../src/cli/args.js';
import { Progress } from '../../src/cli/progress.js';

const BIN = distPath('src/cli/main.js');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const COMMANDS = ['demo', 'stress', 'layout'];

describe('vgic-emu CLI conventions', () => {
  // npx reuses its cache entry for this package and then skips bin-links' chmod, so a fresh
  // build must leave the bin executable itself, or `npx vgic-emu` says "Permission denied".
  it('the build leaves the bin executable, so npx can run it directly', () => {
    expect(statSync(BIN).mode & 0o111).toBe(0o111);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it.each(COMMANDS.flatMap((c) => [[c, '-h'], [c, '--help']]))('%s %s prints that command\'s usage on stdout, exit 0', async (cmd, flag) => {
    const r = await cli([cmd, flag]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: vgic-emu ${cmd}`));
    expect(r.stderr).toBe('');
  });

  it.each(COMMANDS)('help %s is the same text as %s --help', async (cmd) => {
    const [a, b] = await Promise.all([cli(['help', cmd]), cli([cmd, '--help'])]);
    expect(a.stdout).toBe(b.stdout);
  });

  it.each([
    ['layout', ['--bogus'], /Unknown option '--bogus'/],
    ['layout', ['extra'], /extra/],
    ['demo', ['--seconds', '1e-9'], /--seconds must be at least 0\.1/],
    ['demo', ['--vcpus', '2.5'], /--vcpus needs a whole number/],
    ['demo', ['--vcpus', 'abc'], /--vcpus needs a whole number/],
    ['demo', ['--spis', '-3'], /--spis/],
    ['demo', ['--gic', 'v4'], /--gic must be one of v2, v3/],
    ['demo', ['--gic', 'v2', '--vcpus', '9'], /at most 8 with --gic v2/],
    ['stress', ['--jobs', '0'], /--jobs must be at least 1/],
    ['stress', ['--iterations', '1.5'], /--iterations needs a whole number/],
    ['stress', ['--scenario'], /--scenario/],
  ] as const)('%s %j: a usage error with that command\'s usage on stderr, exit 2', async (cmd, args, msg) => {
    const r = await cli([cmd, ...args]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(msg);
    expect(r.stderr).toContain(`usage: vgic-emu ${cmd}`);
  });

  it('no command: the overall usage on stderr, exit 2; an unknown command likewise', async () => {
    for (const args of [[], ['frob']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('usage: vgic-emu <command>');
    }
  });

  it('layout into a reader that closes early exits quietly with 0, every time', async () => {
    for (let i = 0; i < 8; i++) {
      const child = spawn(process.execPath, [BIN, 'layout'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // Read one chunk, then close our end, as `head -1` does.
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise<number | null>((res, rej) => {
        const t = setTimeout(() => rej(new Error('layout did not exit after its reader closed')), 20_000);
        child.on('exit', (c) => {
          clearTimeout(t);
          res(c);
        });
      });
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    }
  });
});

describe('the flag parser', () => {
  const specs: FlagSpec[] = [
    { name: 'n', kind: 'number', integer: true, min: 0, max: 10, help: '' },
    { name: 'x', kind: 'number', help: '' },
    { name: 'mode', kind: 'string', choices: ['a', 'b'], default: 'a', help: '' },
    { name: 'on', kind: 'boolean', short: 'o', help: '' },
  ];
  it('defaults, --flag=value and --flag value, short aliases', () => {
    expect(parseFlags([], specs)).toEqual({ mode: 'a' });
    expect(parseFlags(['--n=0', '--x', '2.5', '--mode', 'b', '-o'], specs)).toEqual({ n: 0, x: 2.5, mode: 'b', on: true });
  });
  it.each([
    [['--n', '11']], [['--n', '-1']], [['--n', '1.5']], [['--x', '0']], [['--x', 'Infinity']], [['--x', '']],
    [['--mode', 'c']], [['--on=1']], [['--nope']], [['stray']],
  ])('%j is a UsageError', (argv) => {
    expect(() => parseFlags(argv, specs)).toThrow(UsageError);
  });
});

describe('progress lines', () => {
  const sink = (isTTY: boolean): { isTTY: boolean; out: string[]; write(s: string): boolean } => ({
    isTTY, out: [], write(s: string) {
      this.out.push(s);
      return true;
    },
  });
  it('done/total, elapsed, ETA and the seed', () => {
    const p = new Progress({ label: 'spi-storm (controlled)', total: 10, suffix: 'seed 0x1', stream: sink(false) as unknown as NodeJS.WriteStream });
    const l = p.line(5, '3 failures', performance.now() + 10_000);
    expect(l).toMatch(/^spi-storm \(controlled\): {2}5\/10 {2}3 failures {2}elapsed 1\ds {2}ETA 1\ds {2}seed 0x1$/);
  });
  it('on a TTY each redraw clears the line first, and done() clears it so the next output starts clean', () => {
    const s = sink(true);
    const p = new Progress({ label: 'x', stream: s as unknown as NodeJS.WriteStream });
    p.update(1);
    p.done();
    expect(s.out[0]!.startsWith('\r\x1b[2K')).toBe(true);
    expect(s.out.at(-1)).toBe('\r\x1b[2K');
  });
  it('elsewhere, plain whole lines', () => {
    const s = sink(false);
    const p = new Progress({ label: 'x', stream: s as unknown as NodeJS.WriteStream });
    p.update(1);
    p.done();
    expect(s.out).toHaveLength(1);
    expect(s.out[0]).toMatch(/^x: {2}1 done {2}elapsed \d+s\n$/);
  });
});

describe('vgic-emu demo --json', () => {
  it.each(['fine', 'global'])('--locking %s: the summary carries the locking mode and integer lock statistics', async (locking) => {
    const r = await cli(['demo', '--vcpus', '2', '--seconds', '0.3', '--spis', '4', '--locking', locking, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { ok: boolean; locking: string; lost: number; lockStats: Record<string, number | string>[] };
    expect(s).toMatchObject({ ok: true, lost: 0, locking });
    const names = s.lockStats.map((c) => c.name);
    // 'global' maps irq_lock and ap_list_lock onto dist->lock; 'fine' takes both classes.
    if (locking === 'fine') expect(names).toEqual(expect.arrayContaining(['irq_lock', 'ap_list_lock']));
    else expect(names).not.toContain('irq_lock');
    // The /proc/lock_stat columns, integers; contentions and bounces bounded by what they count.
    const cols = ['acquisitions', 'contentions', 'conBounces', 'acqBounces', 'waitNs', 'waitMinNs', 'waitMaxNs', 'waitAvgNs', 'holdNs', 'holdMinNs', 'holdMaxNs', 'holdAvgNs'];
    for (const c of s.lockStats) {
      expect(c.acquisitions).toBeGreaterThan(0);
      for (const k of cols) expect(Number.isInteger(c[k]), `${c.name} ${k}`).toBe(true);
      expect(c.contentions).toBeLessThanOrEqual(c.acquisitions as number);
      expect(c.conBounces).toBeLessThanOrEqual(c.contentions as number);
      expect(c.acqBounces).toBeLessThanOrEqual(c.acquisitions as number);
    }
  });
});
