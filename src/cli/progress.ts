/**
 * Progress on stderr for long work. On a TTY one line is cleared and redrawn in place (at most
 * ten times a second) and cleared at the end, so the output that follows starts on a clean line;
 * elsewhere (CI logs, a pipe) a plain line is printed every few seconds instead. Each line shows
 * what was done out of the total (or of the time budget), the elapsed time and an ETA.
 */
export interface ProgressOptions {
  /** What is being done ("spi-storm (controlled)"). */
  label: string;
  /** Units of work in all, if known. */
  total?: number;
  /** A time budget instead of (or beside) a total, in ms. */
  budgetMs?: number;
  /** Shown on every line, e.g. the campaign seed. */
  suffix?: string;
  stream?: NodeJS.WriteStream;
  /** Plain (non-TTY) lines at most this often. Default 5 s. */
  plainEveryMs?: number;
}

const CLEAR_LINE = '\r\x1b[2K';

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class Progress {
  private readonly t0 = performance.now();
  private last = -Infinity;
  private drawn = false;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
  }

  /** The line for `done` units and optional detail (exposed for tests). */
  line(done: number, detail = '', now = performance.now()): string {
    const el = now - this.t0;
    const parts = [`${this.o.label}:`];
    if (this.o.total !== undefined) parts.push(`${done}/${this.o.total}`);
    else parts.push(`${done} done`);
    if (detail) parts.push(detail);
    parts.push(`elapsed ${formatDuration(el)}`);
    let eta: number | undefined;
    if (this.o.total !== undefined && done > 0) eta = (el / done) * (this.o.total - done);
    if (this.o.budgetMs !== undefined) eta = Math.min(eta ?? Infinity, this.o.budgetMs - el);
    if (eta !== undefined && Number.isFinite(eta)) parts.push(`ETA ${formatDuration(eta)}`);
    if (this.o.suffix) parts.push(this.o.suffix);
    return parts.join('  ');
  }

  update(done: number, detail = ''): void {
    const now = performance.now();
    const every = this.tty ? 100 : this.o.plainEveryMs ?? 5000;
    if (now - this.last < every) return;
    this.last = now;
    const l = this.line(done, detail, now);
    if (this.tty) {
      this.stream.write(`${CLEAR_LINE}${l}`);
      this.drawn = true;
    } else this.stream.write(`${l}\n`);
  }

  /** End: clear the redrawn line (TTY), so what follows starts at column 0. */
  done(): void {
    if (this.tty && this.drawn) this.stream.write(CLEAR_LINE);
    this.drawn = false;
  }
}
