// A deliverer of one VFIO device line (the device thread's side): calls deliver() until told to stop.
import { workerData, parentPort } from 'node:worker_threads';
const { deliver } = await import(workerData.deviceLine);
const { EventFd } = await import(workerData.eventfd);
const m = new Int32Array(workerData.sab);
const trigger = EventFd.from(workerData.trigger);
let signals = 0;
Atomics.add(m, workerData.ready, 1);
while (Atomics.load(m, workerData.stop) === 0) if (deliver(m, workerData.p, trigger)) signals++;
parentPort.postMessage({ signals });
