// Worker side of eventfd-threads.test.ts. Loads the COMPILED module (run `npm run build` first):
// Node 20 cannot start a .ts worker entry (PLATFORM.md).
// workerData: { op, handle, n?, count?, until? }; bigints travel as decimal strings.
// Posts exactly one { type: 'result', ... } message.
import { parentPort, workerData } from 'node:worker_threads';
import { EventFd } from '../../dist/src/eventfd/eventfd.js';

const { op, handle } = workerData;
const fd = EventFd.from(handle);

function done(r) {
  parentPort.postMessage({ type: 'result', ...r });
}

function errno(e) {
  return e && e.name === 'KvmError' ? e.code : String(e && e.stack ? e.stack : e);
}

async function main() {
  switch (op) {
    case 'read': // one blocking read
      return { value: String(fd.read()) };
    case 'write': // one (possibly blocking) write
      fd.write(BigInt(workerData.n));
      return { value: 'ok' };
    case 'writeMany': {
      const n = BigInt(workerData.n);
      for (let i = 0; i < workerData.count; i++) fd.write(n);
      return { value: 'ok' };
    }
    case 'readSum': {
      // Blocking reads until the sum reaches `until` (if given) or the eventfd is closed.
      const until = workerData.until === undefined ? undefined : BigInt(workerData.until);
      let sum = 0n;
      let reads = 0;
      const values = new Set();
      try {
        while (until === undefined || sum < until) {
          const v = fd.read();
          sum += v;
          reads++;
          if (values.size < 8) values.add(String(v));
        }
      } catch (e) {
        return { sum: String(sum), reads, values: [...values], errno: errno(e) };
      }
      return { sum: String(sum), reads, values: [...values] };
    }
    case 'readAsync': // the only pending work of this worker: it must not exit early
      return { value: String(await fd.readAsync()) };
    default:
      throw new Error(`unknown op ${op}`);
  }
}

main().then(done, (e) => done({ errno: errno(e) }));
