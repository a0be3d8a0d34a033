/**
 * The README runs. Every ```ts and ```sh block carries a directive (readme-blocks.ts): TypeScript
 * blocks are compiled together under `tsc --strict` against the package itself (imports of
 * 'vgic-emu' resolve by self-reference through package.json "exports" to the build), and those
 * marked `run` are executed; shell blocks run line by line from the repository root with their
 * expected exit code and output. A block without a directive fails the test.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlocks, type ReadmeBlock } from './readme-blocks.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const blocks = readmeBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
const ts = blocks.filter((b) => b.lang === 'ts' && (b.mode === 'run' || b.mode === 'compile'));
const files = blocks.filter((b) => b.mode === 'file');
// Inside the package (no package.json of its own), so that 'vgic-emu' resolves to this package;
// one directory per test process, so that two suites run side by side do not share files.
const DIR = join(ROOT, '.readme-test', `p${process.pid}`);
const file = (b: ReadmeBlock): string => `block-line${b.line}`;

function sh(cmd: string, cwd: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-o', 'pipefail', '-c', cmd], { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 32 << 20, env: { ...process.env, FORCE_COLOR: '0' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('README', () => {
  it('every ts/sh block says what it claims (a readme-test directive)', () => {
    const bare = blocks.filter((b) => b.mode === 'none').map((b) => `line ${b.line} (${b.lang})`);
    expect(bare, 'blocks without a <!-- readme-test: ... --> directive').toEqual([]);
    for (const b of blocks.filter((x) => x.mode === 'skip')) expect(b.reason, `skipped block at line ${b.line} needs a reason`).not.toBe('');
    for (const b of blocks.filter((x) => x.lang === 'ts' && x.mode === 'sh')) throw new Error(`line ${b.line}: a ts block cannot be 'sh'`);
    for (const b of blocks.filter((x) => (x.mode === 'file') !== (x.lang === 'js' && x.mode !== 'skip' && x.mode !== 'none'))) throw new Error(`line ${b.line}: a js block is a 'file' (or skipped), and only a js block is`);
    for (const b of blocks.filter((x) => x.mode === 'file')) expect(b.name, `file block at line ${b.line} needs a name`).toMatch(/^[\w.-]+$/);
  });

  it('names only files the repository has', () => {
    const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const paths = [...text.matchAll(/`((?:src|test|bench|workers|\.ci)\/[\w./-]+)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((p) => !existsSync(join(ROOT, p.replace(/\/$/, ''))))).toEqual([]);
  });

  let compiled: { code: number | null; stdout: string; stderr: string } = { code: null, stdout: '', stderr: '' };
  beforeAll(async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(join(DIR, 'src'), { recursive: true });
    for (const b of ts) writeFileSync(join(DIR, 'src', `${file(b)}.ts`), `${b.code}\n`);
    // The files the reader saves (js) are type-checked with the blocks, against the same exports.
    for (const b of files) writeFileSync(join(DIR, 'src', b.name!), `${b.code}\n`);
    if (ts.length + files.length === 0) return;
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    compiled = await sh([
      `node ${tsc} --strict --noImplicitOverride --target es2022 --module nodenext --moduleResolution nodenext`,
      `--types node --skipLibCheck --allowJs --checkJs --outDir ${join(DIR, 'out')} --rootDir ${join(DIR, 'src')}`,
      ...ts.map((b) => join(DIR, 'src', `${file(b)}.ts`)),
      ...files.map((b) => join(DIR, 'src', b.name!)),
    ].join(' '), ROOT, 120_000);
  }, 150_000);
  afterAll(() => rmSync(DIR, { recursive: true, force: true }));

  it('every TypeScript block (and every js file block, checked as JS) compiles under tsc --strict', () => {
    expect(compiled.stdout + compiled.stderr).toBe('');
    expect(compiled.code).toBe(0);
  });

  it.each(ts.filter((b) => b.mode === 'run').map((b) => [b.line, b]))('the TypeScript block at line %i runs and does what it says', async (_l, b) => {
    expect(compiled.code, 'compilation failed').toBe(0);
    const r = await sh(`node ${join(DIR, 'out', `${file(b)}.js`)}`, ROOT, 60_000);
    expect({ code: r.code, stderr: r.stderr.split('\n').filter((l) => !/ExperimentalWarning|--trace-warnings/.test(l)).join('\n').trim() }).toEqual({ code: b.exit, stderr: '' });
    if (b.stdout) expect(r.stdout).toMatch(b.stdout);
  });

  it.each(blocks.filter((b) => b.mode === 'sh').map((b) => [b.line, b]))('the shell block at line %i runs with its exit code and output', async (_l, b) => {
    const lines = b.code.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l && !l.startsWith('#'));
    // A fresh working directory per block, inside the package (npx finds its bin from there), so
    // that files a command writes (vgic-emu-out/...) are the ones the next line reads.
    const cwd = join(DIR, `sh-line${b.line}`);
    rmSync(cwd, { recursive: true, force: true });
    mkdirSync(cwd, { recursive: true });
    // The files the README asked the reader to save before this block.
    for (const f of blocks.filter((x) => x.mode === 'file' && x.line < b.line)) writeFileSync(join(cwd, f.name!), `${f.code}\n`);
    let last = { code: 0 as number | null, stdout: '', stderr: '' };
    for (const l of lines) {
      last = await sh(l, cwd, 120_000);
      expect(last.code, `\`${l}\` exited ${last.code}\n${last.stderr.slice(-2000)}`).toBe(b.exit);
    }
    if (b.stdout) expect(last.stdout).toMatch(b.stdout);
    if (b.stderr) expect(last.stderr).toMatch(b.stderr);
  }, 300_000);

  it('the newcomer\'s demo command (npm run demo) ends OK', async () => {
    // The README's first block; `npm ci` is CI's own first step and `npm test` is this suite. The
    // build inside `npm run demo` is incremental: with dist/ up to date it rewrites nothing, so
    // the other test files' workers are not disturbed.
    const r = await sh('npm run demo', ROOT, 120_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(r.stdout).toMatch(/^OK: every injected edge interrupt was acknowledged exactly once\.$/m);
  }, 150_000);
});
