/**
 * `vgic-emu stress` as a user runs it: the built CLI in a child process, bounded. Exit codes:
 * 0 clean, 1 violation found (with a one-line repro and written artifacts), 2 usage error.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distPath } from '../../src/kvm/worker-path.js';
import { readScheduleFile } from '../../src/stress/schedule-file.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const CLI_TIMEOUT_MS = 40_000;

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

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { ok: boolean; bugs: string[]; findings: { kind: string }[]; scenario: string };
    expect(report.ok).toBe(false);
    expect(report.scenario).toBe('early-inject');
    expect(report.bugs).toEqual(['earlyInjectDropped']);
    expect(report.findings.map((f) => f.kind)).toContain('accounting');
    const sched = readScheduleFile(join(out, 'schedule.json'));
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
    const replay = await cli(['stress', '--replay', join(out, 'schedule.json'), '--out', join(dir, 'replay')], dir);
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
    const notSchedule = join(dir, 'bug', 'report.json');
    expect(existsSync(notSchedule)).toBe(true);
    const r = await cli(['stress', '--replay', notSchedule, '--out', join(dir, 'x')], dir);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/not a vgic-emu schedule file/);
    const s = await cli(['stress', '--scenario', 'no-such-scenario', '--iterations', '1', '--out', join(dir, 'y')], dir);
    expect(s.code, s.stderr).toBe(2);
    expect(s.stderr).toMatch(/unknown scenario 'no-such-scenario'/);
  });
});
