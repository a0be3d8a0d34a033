/**
 * The HTML report rendered in a real browser: a tiny `vgic-emu lockstat --html` run, opened in
 * Debian's headless Chromium through puppeteer-core; every plot must have its axes and its
 * series laid out with a non-empty box, and a screenshot is saved to test-output/ (gitignored).
 *
 * Chromium is required: .ci/run installs it. Set VGIC_EMU_NO_BROWSER=1 to skip this file on a
 * machine without a browser (it says so loudly); without that, a missing browser fails.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distPath, PACKAGE_ROOT } from '../../src/kvm/worker-path.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? '/usr/bin/chromium';
const SKIP = process.env.VGIC_EMU_NO_BROWSER === '1';
const SHOTS = resolve(PACKAGE_ROOT, 'test-output', 'lockstat');

if (SKIP) {
  process.stderr.write('\n*** VGIC_EMU_NO_BROWSER=1: SKIPPING the headless-Chromium test of the lockstat HTML report ***\n\n');
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vgic-emu-html-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function lockstat(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [distPath('src/cli/main.js'), 'lockstat', ...args], { cwd: dir, timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, _out, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr });
    });
  });
}

interface Box {
  w: number;
  h: number;
}
interface PlotInfo {
  id: string;
  box: Box;
  xAxis: Box | null;
  yAxis: Box | null;
  series: { name: string; box: Box }[];
}

describe.skipIf(SKIP)('lockstat --html in headless Chromium', () => {
  it('the plots render with their axes and series; screenshot saved', async () => {
    expect(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does), or set VGIC_EMU_NO_BROWSER=1 to skip`).toBe(true);
    const html = join(dir, 'report.html');
    const json = join(dir, 'report.json');
    const r = await lockstat(['--workload', 'mixed', '--vcpus', '1,2', '--seconds', '0.1', '--repeat', '1', '--no-overhead', '--html', html, '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(html, 'utf8');
    // Self-contained: no scripts, no external resources.
    expect(text).not.toMatch(/<script/i);
    expect(text).not.toMatch(/(src|href)="(https?:)?\/\//i);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { configs: { trace?: unknown }[] };
    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1100, height: 900 });
      await page.goto(pathToFileURL(html).href, { waitUntil: 'load', timeout: 30_000 });
      const plots = await page.evaluate((): PlotInfo[] => {
        const box = (e: Element | null): Box | null => {
          if (!e) return null;
          const b = (e as SVGGraphicsElement).getBoundingClientRect();
          return { w: b.width, h: b.height };
        };
        return [...document.querySelectorAll('svg.plot')].map((svg) => ({
          id: svg.id,
          box: box(svg)!,
          xAxis: box(svg.querySelector('g.x-axis')),
          yAxis: box(svg.querySelector('g.y-axis')),
          series: [...svg.querySelectorAll('g.series')].map((g) => ({ name: g.getAttribute('data-series') ?? '', box: box(g)! })),
        }));
      });
      const ids = plots.map((p) => p.id);
      expect(ids).toEqual(expect.arrayContaining(['plot-throughput', 'plot-contended', 'plot-waittime', 'plot-wait-histogram']));
      const lanes = report.configs.filter((c) => c.trace).length;
      expect(lanes).toBe(2);
      expect(ids).toEqual(expect.arrayContaining(['plot-swimlane-fine', 'plot-swimlane-global']));
      for (const p of plots) {
        expect(p.box.w * p.box.h, `${p.id} box`).toBeGreaterThan(0);
        expect(p.xAxis && p.xAxis.w > 0 && p.xAxis.h > 0, `${p.id} x axis`).toBe(true);
        expect(p.yAxis && p.yAxis.h > 0, `${p.id} y axis`).toBe(true);
      }
      const tp = plots.find((p) => p.id === 'plot-throughput')!;
      expect(tp.series.map((s) => s.name)).toEqual(['fine', 'global']);
      for (const s of tp.series) expect(s.box.w * s.box.h, `throughput series ${s.name}`).toBeGreaterThan(0);
      // Points and spread bars: one per vCPU count per series.
      const points = await page.$$eval('#plot-throughput g.series circle.point', (e) => e.length);
      expect(points).toBe(4);
      expect(await page.$$eval('#plot-throughput g.series g.spread', (e) => e.length)).toBe(4);
      // Bars: one series per configuration.
      expect(plots.find((p) => p.id === 'plot-contended')!.series).toHaveLength(4);
      mkdirSync(SHOTS, { recursive: true });
      const shot = join(SHOTS, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
