// Worker side of irqfd.test.ts: a thread that has an eventfd (EventFd.from(handle)) but does NOT
// map the VM, so its writes can only be injected by the VM's irqfd injector worker (slow path).
// Loads the COMPILED eventfd module (Node 20 cannot start a .ts worker entry).
//
// workerData: { op, handle, ... }; posts exactly one { type: 'result', ... } message.
//   op 'credit': { ram: SharedArrayBuffer, ackIdx, n, timeoutMs } - n times: write 1, then poll the
//                guest RAM ack word until it moved (bounded). Result { writes, error? }.
//   op 'free':   { n } - n writes of 1 as fast as possible. Result { writes }.
//   op 'loop':   { ctl: SharedArrayBuffer } - write 1 until ctl[0] != 0, counting in ctl[1].
//                Result { writes, errno? }.
//   op 'close':  close the eventfd. Result { closed: true }.
import { parentPort, workerData } from 'node:worker_threads';
import { EventFd } from '../../dist/src/eventfd/eventfd.js';

const { op, handle } = workerData;
const fd = EventFd.from(handle);
/** Private word for a short poll pause (a poll interval, not synchronisation). */
const pause = new Int32Array(new SharedArrayBuffer(4));

function done(r) {
  parentPort.postMessage({ type: 'result', ...r });
}

function errno(e) {
  return e && e.name === 'KvmError' ? e.code : String(e && e.stack ? e.stack : e);
}

function credit() {
  const ram = new Int32Array(workerData.ram);
  const idx = workerData.ackIdx;
  for (let i = 0; i < workerData.n; i++) {
    const before = Atomics.load(ram, idx);
    fd.write(1n);
    const deadline = performance.now() + workerData.timeoutMs;
    let spins = 0;
    while (Atomics.load(ram, idx) === before) {
      if (performance.now() > deadline) {
        return { writes: i + 1, error: `write #${i + 1}: ack word ${idx} stuck at ${before} for ${workerData.timeoutMs} ms (eventfd value ${fd.value})` };
      }
      if (++spins > 200) Atomics.wait(pause, 0, 0, 0.05);
    }
    const after = Atomics.load(ram, idx);
    if (after !== before + 1) return { writes: i + 1, error: `write #${i + 1}: ack word went ${before} -> ${after}` };
  }
  return { writes: workerData.n };
}

function free() {
  for (let i = 0; i < workerData.n; i++) fd.write(1n);
  return { writes: workerData.n };
}

function loop() {
  const ctl = new Int32Array(workerData.ctl);
  let writes = 0;
  try {
    while (Atomics.load(ctl, 0) === 0) {
      fd.write(1n);
      writes++;
      Atomics.add(ctl, 1, 1);
    }
  } catch (e) {
    return { writes, errno: errno(e) };
  }
  return { writes };
}

try {
  switch (op) {
    case 'credit':
      done(credit());
      break;
    case 'free':
      done(free());
      break;
    case 'loop':
      done(loop());
      break;
    case 'close':
      fd.close();
      done({ closed: true });
      break;
    default:
      done({ error: `unknown op ${op}` });
  }
} catch (e) {
  done({ error: errno(e) });
}
