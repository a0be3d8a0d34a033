/**
 * The eventfd contract across real worker_threads: blocking waits woken from another thread,
 * close while waiting, and no lost or duplicated counts under contention.
 *
 * Workers run eventfd-worker.mjs, which imports the compiled module from dist/ (`npm run build`).
 * Every wait is bounded and fails with a message naming what it waited for; nothing sleeps to let
 * something happen: "the worker is blocked" is observed through the eventfd's waiter counts.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventFd, EFD_SEMAPHORE, EVENTFD_MAX } from '../../src/eventfd/eventfd.js';
import { eventfdAudit } from '../../src/check/audits.js';

const WORKER_URL = new URL('./eventfd-worker.mjs', import.meta.url);
const DIST_MODULE = new URL('../../dist/src/eventfd/eventfd.js', import.meta.url);
const T = 10_000; // bound for a single wake-up or worker start
const T_STRESS = 60_000;

interface Result {
  type: 'result';
  value?: string;
  errno?: string;
  sum?: string;
  reads?: number;
  values?: string[];
}

const live: Worker[] = [];

afterEach(async () => {
  await Promise.all(live.splice(0).map((w) => w.terminate()));
});

beforeAll(() => {
  if (!existsSync(fileURLToPath(DIST_MODULE))) {
    throw new Error(`${fileURLToPath(DIST_MODULE)} is missing: run \`npm run build\` first`);
  }
});

/** Start a worker running `op` on `fd`; `result` settles with its one result message. */
function spawn(op: string, fd: EventFd, extra: Record<string, unknown> = {}): { result: Promise<Result> } {
  const w = new Worker(WORKER_URL, { workerData: { op, handle: fd.share(), ...extra } });
  live.push(w);
  // Listeners attached at creation: a message emitted before a listener exists is lost.
  const result = new Promise<Result>((resolve, reject) => {
    w.once('message', (m: Result) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker '${op}' exited (code ${code}) without a result`)));
  });
  return { result };
}

async function within<X>(p: Promise<X>, ms: number, what: string): Promise<X> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll a predicate over shared state, bounded. */
async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!pred()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

const readersParked = (fd: EventFd, n = 1) => () => fd.waiters().readers >= n;
const writersParked = (fd: EventFd, n = 1) => () => fd.waiters().writers >= n;

describe('eventfd across threads: wake-ups', () => {
  it('a blocking read in a worker is woken by a write on the main thread', async () => {
    const fd = new EventFd(0, 0);
    const r = spawn('read', fd);
    await until(readersParked(fd), T, 'the worker to park in read()');
    fd.write(5n);
    expect(await within(r.result, T, 'the woken read')).toEqual({ type: 'result', value: '5' });
    expect(fd.value).toBe(0n);
  });

  it('a blocking writer at the overflow limit is woken by a read', async () => {
    const fd = new EventFd(0, 0);
    fd.write(EVENTFD_MAX);
    const w = spawn('write', fd, { n: '1' });
    await until(writersParked(fd), T, 'the worker to park in write() at the limit');
    expect(fd.value).toBe(EVENTFD_MAX); // it is blocked, not added
    expect(fd.read()).toBe(EVENTFD_MAX);
    expect(await within(w.result, T, 'the woken write')).toEqual({ type: 'result', value: 'ok' });
    expect(fd.read()).toBe(1n);
  });

  it('readAsync on the main thread is resolved by a worker\'s write', async () => {
    const fd = new EventFd(0, 0);
    const p = fd.readAsync();
    const w = spawn('write', fd, { n: '42' });
    expect(await within(p, T, 'readAsync')).toBe(42n);
    await within(w.result, T, 'the writer');
  });

  it('a synchronous waitReadable on the main thread is woken by a worker\'s write', async () => {
    const fd = new EventFd(0, 0);
    const w = spawn('write', fd, { n: '3' });
    // Blocks the main event loop; the worker runs on its own thread. Bounded by the timeout.
    expect(fd.waitReadable(T)).toBe(true);
    expect(fd.read()).toBe(3n);
    await within(w.result, T, 'the writer');
  });

  it('a worker whose only pending work is readAsync stays alive until the write', async () => {
    // Node 20: a pending Atomics.waitAsync alone does not keep a worker alive (PLATFORM.md); the
    // worker would exit without a result and spawn()'s 'exit' handler would fail the test.
    const fd = new EventFd(0, 0);
    const r = spawn('readAsync', fd);
    await until(readersParked(fd), T, 'the worker\'s readAsync to be pending');
    // A bounded poll for the opposite: the worker must still be there after its loop went idle.
    const early = await Promise.race([r.result.then(() => 'settled', () => 'exited'), tick(50)]);
    expect(early).toBe('pending');
    fd.write(8n);
    expect(await within(r.result, T, 'the worker\'s readAsync')).toEqual({ type: 'result', value: '8' });
  });
});

/** Resolves 'pending' after ms: used only to assert that something did NOT happen. */
function tick(ms: number): Promise<'pending'> {
  return new Promise((r) => setTimeout(() => r('pending'), ms));
}

describe('eventfd across threads: close', () => {
  it('close while a worker is blocked in read: the worker gets EBADF', async () => {
    const fd = new EventFd(0, 0);
    const r = spawn('read', fd);
    await until(readersParked(fd), T, 'the worker to park in read()');
    fd.close();
    expect(await within(r.result, T, 'EBADF in the blocked reader')).toEqual({ type: 'result', errno: 'EBADF' });
    expect(fd.waiters()).toEqual({ readers: 0, writers: 0 });
  });

  it('close while a worker is blocked in write at the limit: the worker gets EBADF', async () => {
    const fd = new EventFd(0, 0);
    fd.write(EVENTFD_MAX);
    const w = spawn('write', fd, { n: '1' });
    await until(writersParked(fd), T, 'the worker to park in write()');
    fd.close();
    expect(await within(w.result, T, 'EBADF in the blocked writer')).toEqual({ type: 'result', errno: 'EBADF' });
  });

  it('close from one worker wakes a reader in another worker and a readAsync on main', async () => {
    const fd = new EventFd(0, 0);
    const pending = fd.readAsync().then(() => 'resolved', (e: { code?: string }) => e.code);
    const r = spawn('read', fd);
    await until(readersParked(fd, 2), T, 'both readers to be parked');
    const closer = new Worker(
      `import { workerData } from 'node:worker_threads';
       const { EventFd } = await import(workerData.mod);
       EventFd.from(workerData.handle).close();`,
      { eval: true, workerData: { mod: DIST_MODULE.href, handle: fd.share() } },
    );
    live.push(closer);
    expect(await within(r.result, T, 'EBADF in the worker reader')).toEqual({ type: 'result', errno: 'EBADF' });
    expect(await within(pending, T, 'EBADF in readAsync')).toBe('EBADF');
    expect(fd.closed).toBe(true);
  });
});

describe('eventfd across threads: no lost or duplicated counts', () => {
  it('2 writers x 50 000 writes of 1, one blocking reader: the sum is exactly 100 000', async () => {
    const fd = new EventFd(0, 0);
    const reader = spawn('readSum', fd, { until: '100000' });
    const writers = [0, 1].map(() => spawn('writeMany', fd, { n: '1', count: 50_000 }));
    for (const w of writers) expect(await within(w.result, T_STRESS, 'a writer')).toEqual({ type: 'result', value: 'ok' });
    const r = await within(reader.result, T_STRESS, 'the reader to reach 100 000');
    expect(r.errno).toBeUndefined();
    expect(r.sum).toBe('100000');
    expect(fd.value).toBe(0n); // nothing left over: no duplicated counts either
    expect(fd.totals().lostWakes).toBe(0); // no false alarm of the lost-wake detector
  });

  it('semaphore mode: 2 writers x 50 000, 2 readers taking 1 each: 100 000 reads in all', async () => {
    const fd = new EventFd(0, EFD_SEMAPHORE);
    const readers = [0, 1].map(() => spawn('readSum', fd));
    const writers = [0, 1].map(() => spawn('writeMany', fd, { n: '1', count: 50_000 }));
    for (const w of writers) await within(w.result, T_STRESS, 'a writer');
    await until(() => fd.value === 0n, T_STRESS, 'the readers to drain the counter');
    // Each reader ends by blocking on the empty eventfd; close releases it with its sum so far.
    fd.close();
    const rs = await Promise.all(readers.map((r) => within(r.result, T, 'a reader to end on EBADF')));
    for (const r of rs) {
      expect(r.errno).toBe('EBADF');
      expect(r.sum).toBe(String(r.reads)); // every semaphore read returned exactly 1
    }
    expect(rs.reduce((a, r) => a + r.reads!, 0)).toBe(100_000);
    expect(fd.totals().lostWakes).toBe(0);
  });

  it('writers blocked at the limit hand off through reads: 2 x 2000 writes of 2^64-2', async () => {
    // Two such writes can never both fit, so almost every write parks until a read empties the
    // counter: this exercises the writer wake path thousands of times.
    const fd = new EventFd(0, 0);
    const total = 2n * 2000n * EVENTFD_MAX;
    const reader = spawn('readSum', fd, { until: String(total) });
    const writers = [0, 1].map(() => spawn('writeMany', fd, { n: String(EVENTFD_MAX), count: 2000 }));
    for (const w of writers) expect(await within(w.result, 20_000, 'a writer')).toEqual({ type: 'result', value: 'ok' });
    // Takes well under a second; a lost wake-up on either side costs a whole park slice per
    // hand-off instead, and 4000 of those do not fit in this bound.
    const r = await within(reader.result, 20_000, 'the reader (ping-pong of 4000 hand-offs)');
    expect(r.sum).toBe(String(total));
    expect(r.reads).toBe(4000);
    expect(r.values).toEqual([String(EVENTFD_MAX)]);
    expect(fd.totals().lostWakes).toBe(0);
  });
});

describe('eventfd across threads: the lost-wake detector', () => {
  /** The bug under test: a waker that publishes the count and never wakes (no seq bump, no notify). */
  function publishWithoutWake(fd: EventFd, n: bigint): void {
    Atomics.add(new BigUint64Array(fd.share().sab, 0, 1), 0, n);
  }

  it('a blocking read in a worker whose count was published without a wake-up: it still returns, and the wait is counted and audited', async () => {
    const fd = new EventFd(0, 0);
    const r = spawn('read', fd);
    await until(readersParked(fd), T, 'the worker to park in read()');
    publishWithoutWake(fd, 3n);
    // The reader comes back after its slice and the grace (1 s x the machine's load factor, at most 10 s).
    expect(await within(r.result, 30_000, 'the read after its slice and grace')).toEqual({ type: 'result', value: '3' });
    expect(fd.totals().lostWakes).toBe(1);
    expect(eventfdAudit([{ name: 'rfd', fd }]).join('\n')).toMatch(/eventfd rfd: lost wake-up: 1 wait\(s\) found the eventfd ready/);
  });

  it('the same for an event-loop wait (waitReadableAsync: Atomics.waitAsync)', async () => {
    const fd = new EventFd(0, 0);
    const p = fd.waitReadableAsync(60_000);
    await until(readersParked(fd), T, 'the async wait to register');
    publishWithoutWake(fd, 1n);
    expect(await within(p, 30_000, 'the async wait after its slice and grace')).toBe(true);
    expect(fd.totals().lostWakes).toBe(1);
  });

  it('a correct write during the wait is no lost wake-up, and neither is a wait that simply times out', async () => {
    const fd = new EventFd(0, 0);
    expect(fd.waitReadable(120)).toBe(false); // three slices, nothing written
    const r = spawn('read', fd);
    await until(readersParked(fd), T, 'the worker to park in read()');
    fd.write(2n);
    expect(await within(r.result, T, 'the woken read')).toEqual({ type: 'result', value: '2' });
    expect(fd.totals().lostWakes).toBe(0);
    expect(eventfdAudit([{ name: 'fd', fd }])).toEqual([]);
  });
});
