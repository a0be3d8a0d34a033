/**
 * From a compiled module's offset back to its TypeScript line, through the `.js.map` tsc writes
 * beside it (tsconfig: sourceMap + inlineSources), so a report names `src/vgic/queue.ts:123` and
 * prints that source line, not the compiled one.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';

export interface TsPosition {
  /** Path of the .ts file relative to the package root, e.g. `src/vgic/queue.ts`. */
  file: string;
  /** 1-based line. */
  line: number;
  /** The source line's text, trimmed. */
  source: string;
}

export class ModuleMap {
  private readonly map: SourceMap;
  private readonly lineStarts: number[];
  private readonly sources: Map<string, string[]>;

  /**
   * `jsPath`: the compiled file; `js`: its text; `root`: the package root that .ts paths are
   * named relative to. The map is `jsPath + '.map'`.
   */
  constructor(private readonly jsPath: string, js: string, private readonly root: string) {
    const payload = JSON.parse(readFileSync(`${jsPath}.map`, 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    this.map = new SourceMap(payload as unknown as ConstructorParameters<typeof SourceMap>[0]);
    this.lineStarts = [0];
    for (let i = 0; i < js.length; i++) if (js.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
    this.sources = new Map();
    payload.sources.forEach((s, i) => {
      const text = payload.sourcesContent?.[i] ?? null;
      this.sources.set(this.absSource(s), text === null ? [] : text.split('\n'));
    });
  }

  private absSource(s: string): string {
    return resolve(dirname(this.jsPath), s);
  }

  /** The TypeScript position of JS offset `at` (0-based). */
  position(at: number): TsPosition {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    const e = this.map.findEntry(lo, at - this.lineStarts[lo]!) as { originalSource?: string; originalLine?: number };
    if (e.originalSource === undefined || e.originalLine === undefined) {
      return { file: relative(this.root, this.jsPath), line: lo + 1, source: '' };
    }
    // Node 20 gives originalSource as a file: URL or as the map's path resolved against the map.
    const abs = e.originalSource.startsWith('file:') ? new URL(e.originalSource).pathname : this.absSource(e.originalSource);
    const lines = this.sources.get(abs) ?? [];
    return { file: relative(this.root, abs), line: e.originalLine + 1, source: (lines[e.originalLine] ?? '').trim() };
  }
}
