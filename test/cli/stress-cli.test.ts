/**
 * `vgic-emu stress` as a user runs it: the built CLI in a child process, bounded. Exit codes:
 * 0 clean, 1 violation found (with a one-line repro and written artifacts), 2 usage error.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distPath } from '../../src/kvm/worker-path.js';
import { interruptCli } from './interrupt.js';
import { readScheduleFile } from '../../src/stress/schedule-file.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

// A bound, not a speed requirement: on a loaded 2-core machine three parallel shard runs took
// over a minute.
const CLI_TIMEOUT_MS = 120_000;

function cli(args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [distPath('src/cli/main.js'), ...args], { cwd, timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vgic-emu-cli-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('vgic-emu stress', () => {
  it('exits 0 on a clean short campaign, and --junit writes a passing test suite', async () => {
    const out = join(dir, 'clean');
    const junit = join(dir, 'clean.xml');
    const r = await cli(['stress', '--scenario', 'spi-storm', '--iterations', '2', '--size', '20', '--seed', '1', '--out', out, '--junit', junit], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok: 2 runs of spi-storm/m);
    expect(r.stdout).not.toMatch(/repro:/);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/^<\?xml/);
    expect(xml).toMatch(/<testsuite\b[^>]*failures="0"/);
    expect(xml).not.toMatch(/<failure/);
  });

  it('exits 1 on a seeded race, prints a repro line, writes report, schedule and JUnit failure; the repro and the replay fail again', async () => {
    const out = join(dir, 'bug');
    const junit = join(dir, 'bug.xml');
    const r = await cli(['stress', '--bug', 'earlyInjectDropped', '--iterations', '3', '--size', '20', '--seed', '1', '--out', out, '--junit', junit], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAIL early-inject/m);
    expect(r.stdout).toMatch(/accounting:/);
    const repro = r.stdout.split('\n').find((l) => l.startsWith('repro: '));
    expect(repro, r.stdout).toBeDefined();
    expect(repro).toMatch(/--bug earlyInjectDropped/);
    expect(repro).toMatch(/--seed 0x[0-9a-f]+/);

    // The run's own artefact directory, named by the replay line.
    const schedPath = /^ {3}or: npx vgic-emu stress --replay (\S+)$/m.exec(r.stdout)?.[1];
    expect(schedPath, r.stdout).toBeDefined();
    const art = dirname(schedPath!);
    expect(dirname(art)).toBe(out);
    const report = JSON.parse(readFileSync(join(art, 'report.json'), 'utf8')) as { ok: boolean; bugs: string[]; findings: { kind: string }[]; scenario: string };
    expect(report.ok).toBe(false);
    expect(report.scenario).toBe('early-inject');
    expect(report.bugs).toEqual(['earlyInjectDropped']);
    expect(report.findings.map((f) => f.kind)).toContain('accounting');
    const sched = readScheduleFile(schedPath!);
    expect(sched.scenario).toBe('early-inject');
    expect(sched.bugs).toEqual(['earlyInjectDropped']);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuite\b/);
    expect(xml).toMatch(/<failure/);

    // The one-line repro is a command line that reproduces the failure.
    const argv = repro!.replace(/^repro: npx vgic-emu /, '').split(' ');
    expect(argv[0]).toBe('stress');
    const again = await cli([...argv, '--out', join(dir, 'repro')], dir);
    expect(again.code, again.stderr).toBe(1);
    expect(again.stdout).toMatch(/accounting:/);

    // And so does the written schedule.
    const replay = await cli(['stress', '--replay', schedPath!, '--out', join(dir, 'replay')], dir);
    expect(replay.code, replay.stderr).toBe(1);
    expect(replay.stdout).toMatch(/accounting:/);
  });

  it.each([
    [['stress', '--no-such-flag']],
    [['stress', '--mode', 'sideways']],
    [['stress', '--bug', 'notABug']],
    [['stress', '--vcpus', '2.5']],
    [['stress', '--duration', '1', '--iterations', '1']],
  ])('exits 2 on a usage error: %j', async (args) => {
    const r = await cli(args, dir);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^vgic-emu stress: /);
    expect(r.stdout).not.toMatch(/^(ok|FAIL)/m);
  });

  it('exits 2 when the --replay file is not a schedule file, and when the scenario does not exist', async () => {
    const notSchedule = join(dir, 'bug', readdirSync(join(dir, 'bug'))[0]!, 'report.json');
    expect(existsSync(notSchedule)).toBe(true);
    const r = await cli(['stress', '--replay', notSchedule, '--out', join(dir, 'x')], dir);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/not a vgic-emu schedule file/);
    const s = await cli(['stress', '--scenario', 'no-such-scenario', '--iterations', '1', '--out', join(dir, 'y')], dir);
    expect(s.code, s.stderr).toBe(2);
    expect(s.stderr).toMatch(/unknown scenario 'no-such-scenario'/);
  });

  it('a replay never rewrites its input, refuses another configuration (exit 2), and --jobs does not change the reported seed', async () => {
    const out = join(dir, 'trust');
    const args = ['stress', '--bug', 'earlyInjectDropped', '--iterations', '6', '--size', '20', '--seed', '7', '--keep-going'];
    const [one, two] = await Promise.all([cli([...args, '--jobs', '1', '--out', join(out, 'j1'), '--json'], dir), cli([...args, '--jobs', '2', '--out', join(out, 'j2'), '--json'], dir)]);
    expect(one.code, one.stderr).toBe(1);
    expect(two.code, two.stderr).toBe(1);
    type Summary = { failure: { seed: string }; repro: string; replay: string; files: string[] };
    const s1 = JSON.parse(one.stdout) as Summary;
    const s2 = JSON.parse(two.stdout) as Summary;
    expect(s2.failure.seed).toBe(s1.failure.seed);
    expect(s1.repro).toMatch(/^npx vgic-emu stress --scenario early-inject /);
    expect(s1.files.some((p) => p.endsWith('schedule.json'))).toBe(true);

    const sched = s1.files.find((p) => p.endsWith('schedule.json'))!;
    const before = readFileSync(sched, 'utf8');
    const mtime = statSync(sched).mtimeMs;
    const replay = await cli(['stress', '--replay', sched, '--out', join(out, 'j1')], dir);
    expect(replay.code, replay.stderr).toBe(1);
    expect(readFileSync(sched, 'utf8')).toBe(before);
    expect(statSync(sched).mtimeMs).toBe(mtime);
    const wrote = /^wrote (.*)$/m.exec(replay.stdout)?.[1]?.split(', ') ?? [];
    expect(wrote.length).toBeGreaterThan(0);
    for (const p of wrote) expect(dirname(p)).not.toBe(dirname(sched));

    const other = await cli(['stress', '--replay', sched, '--locking', 'global', '--out', join(out, 'x')], dir);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/recorded with locking "fine", not "global"/);
    const gic = await cli(['stress', '--replay', sched, '--gic', 'v2', '--out', join(out, 'x')], dir);
    expect(gic.code).toBe(2);
  });

  it('JUnit has one testcase per seed, and the failing one carries its repro line and artefacts', async () => {
    const junit = join(dir, 'per-seed.xml');
    const r = await cli(['stress', '--bug', 'earlyInjectDropped', '--iterations', '4', '--size', '20', '--seed', '3', '--keep-going', '--out', join(dir, 'per-seed'), '--junit', junit], dir);
    expect(r.code, r.stderr).toBe(1);
    const xml = readFileSync(junit, 'utf8');
    expect(xml.match(/<testcase /g)).toHaveLength(4);
    expect(xml).toMatch(/repro: npx vgic-emu stress --scenario early-inject/);
    expect(xml).toMatch(/artefacts: .*report\.json/);
  });

  it('a user scenario: the repro names its path; a module that fails to load or changed since recording is exit 2', async () => {
    const bad = join(dir, 'broken-scenario.mjs');
    writeFileSync(bad, "throw new Error('scenario module exploded');\n");
    const b = await cli(['stress', '--scenario', bad, '--iterations', '1', '--out', join(dir, 'u')], dir);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/scenario module exploded/);
    // A copy of a built-in scenario as a user module, with a bug seed that its driver exposes.
    const orig = pathToFileURL(distPath('src/stress/scenarios/early-inject.js'));
    const src = readFileSync(orig, 'utf8').replace(/from '(\.\.?\/[^']+)'/g, (_m, spec: string) => `from '${new URL(spec, orig).href}'`);
    const mine = join(dir, 'my-scenario.mjs');
    writeFileSync(mine, src);
    const r = await cli(['stress', '--scenario', mine, '--bug', 'earlyInjectDropped', '--iterations', '3', '--size', '20', '--seed', '1', '--out', join(dir, 'u')], join(dir, '..'));
    expect(r.code, r.stderr + r.stdout).toBe(1);
    const repro = /^repro: (.*)$/m.exec(r.stdout)?.[1];
    expect(repro).toContain(`--scenario ${mine}`);
    const sched = /^ {3}or: npx vgic-emu stress --replay (\S+)$/m.exec(r.stdout)![1]!;
    writeFileSync(mine, `${src}\n// edited\n`);
    const changed = await cli(['stress', '--replay', sched, '--out', join(dir, 'u')], dir);
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/changed since the schedule was recorded/);
  });

  it('a replay that cannot follow its schedule stops with "diverged at step N" and exit 2, never "no violation"', async () => {
    const out = join(dir, 'diverge');
    const r = await cli(['stress', '--bug', 'earlyInjectDropped', '--iterations', '3', '--size', '20', '--seed', '1', '--out', out], dir);
    expect(r.code, r.stderr).toBe(1);
    const sched = /^ {3}or: npx vgic-emu stress --replay (\S+)$/m.exec(r.stdout)![1]!;
    const f = JSON.parse(readFileSync(sched, 'utf8')) as { switches: [number, number, number][] };
    expect(f.switches.length).toBeGreaterThan(0);
    // A recorded decision for a thread that does not exist: it cannot be followed.
    const badThread = join(dir, 'bad-thread.json');
    writeFileSync(badThread, JSON.stringify({ ...f, switches: f.switches.map(([st, t, k], i) => (i === 0 ? [st, 60, k] : [st, t, k])) }));
    const a = await cli(['stress', '--replay', badThread, '--out', out], dir);
    expect(a.code, a.stdout + a.stderr).toBe(2);
    expect(a.stderr).toMatch(new RegExp(`diverged at step ${f.switches[0]![0]}`));
    expect(a.stdout).not.toMatch(/no violation/);
    // A decision recorded past the end of the run: it is never reached.
    const pastEnd = join(dir, 'past-end.json');
    writeFileSync(pastEnd, JSON.stringify({ ...f, switches: [...f.switches, [1e9, 0, 0]] }));
    const b = await cli(['stress', '--replay', pastEnd, '--out', out], dir);
    expect(b.code, b.stdout + b.stderr).toBe(2);
    expect(b.stderr).toMatch(/diverged at step 1000000000/);
  });

  it('Ctrl-C: the campaign stops starting runs, prints its summary and seed, writes the partial JUnit, exits 130', async () => {
    const junit = join(dir, 'interrupted.xml');
    const { code, stdout, stderr } = await interruptCli(['stress', '--scenario', 'spi-storm', '--duration', '120', '--seed', '9', '--out', join(dir, 'int'), '--junit', junit], dir, / 1 done/, 60_000);
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/campaign seed 0x00000009/);
    expect(stderr).toMatch(/interrupted: finishing the runs under way/);
    expect(stdout).toMatch(/^ok: interrupted after \d+ runs of spi-storm \(controlled\), campaign seed 0x00000009, no violation/m);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuite\b/);
  });

  it('shards 1/3, 2/3 and 3/3 merged equal the whole campaign; shards of another campaign, or overlapping, are refused', async () => {
    const base = ['stress', '--bug', 'earlyInjectDropped', '--iterations', '7', '--size', '20', '--seed', '11', '--keep-going', '--json'];
    type S = { results: { index: number; seed: string; ok: boolean }[]; failure?: { seed: string } };
    const runJson = async (extra: string[], file: string): Promise<S> => {
      const r = await cli([...base, ...extra, '--out', join(dir, 'shards')], dir);
      expect([0, 1]).toContain(r.code);
      writeFileSync(join(dir, file), r.stdout);
      return JSON.parse(r.stdout) as S;
    };
    const whole = await runJson([], 'whole.json');
    const parts = await Promise.all([1, 2, 3].map((i) => runJson(['--shard', `${i}/3`], `shard-${i}.json`)));
    expect(parts.map((p) => p.results.map((r) => r.index))).toEqual([[0, 3, 6], [1, 4], [2, 5]]);
    const merged = join(dir, 'merged.json');
    const m = await cli(['merge', ...[1, 2, 3].map((i) => join(dir, `shard-${i}.json`)), '--json', merged, '--junit', join(dir, 'merged.xml')], dir);
    expect(m.code, m.stderr).toBe(whole.failure ? 1 : 0);
    const mj = JSON.parse(readFileSync(merged, 'utf8')) as S & { missingShards: string[] };
    expect(mj.results.map((r) => [r.index, r.seed, r.ok])).toEqual(whole.results.map((r) => [r.index, r.seed, r.ok]));
    expect(mj.failure?.seed).toBe(whole.failure?.seed);
    expect(mj.missingShards).toEqual([]);
    expect(readFileSync(join(dir, 'merged.xml'), 'utf8').match(/<testcase /g)).toHaveLength(7);
    // The same shard twice: a run in two shards.
    const dup = await cli(['merge', join(dir, 'shard-1.json'), join(dir, 'shard-1.json')], dir);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/in two shards/);
    // A shard of another campaign (another seed).
    await runJson(['--shard', '2/3', '--seed', '12'], 'other.json');
    const other = await cli(['merge', join(dir, 'shard-1.json'), join(dir, 'other.json')], dir);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/another campaign/);
  }, 240_000);

  it('--mode chaos --record writes a schedule that --replay replays exactly; --record needs chaos mode', async () => {
    const rec = join(dir, 'chaos-record.json');
    const bad = await cli(['stress', '--scenario', 'spi-storm', '--iterations', '1', '--record', rec], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--record .*--mode chaos/);
    const r = await cli(['stress', '--scenario', 'spi-storm', '--mode', 'chaos', '--iterations', '1', '--size', '20', '--seed', '5', '--record', rec, '--out', join(dir, 'rec')], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^recorded: \d+ schedule points of seed 0x00000005 in /m);
    const sf = readScheduleFile(rec);
    expect(sf.recordedFrom?.mode).toBe('chaos');
    expect(sf.recordedFrom!.points).toBeGreaterThan(0);
    type J = { ok: boolean; divergedAt: number | null; schedule: string };
    const replays = await Promise.all([1, 2].map(async () => {
      const x = await cli(['stress', '--replay', rec, '--json', '--out', join(dir, 'rec')], dir);
      expect(x.code, x.stderr).toBe(0);
      return JSON.parse(x.stdout) as J;
    }));
    expect(replays[0]!.divergedAt).toBeNull();
    expect(replays[1]).toEqual({ ...replays[0], files: (replays[1] as unknown as { files: string[] }).files });
  });
});
