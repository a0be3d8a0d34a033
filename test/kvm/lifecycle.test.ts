/**
 * What a Node developer meets in the first hour (issue 12): KVM_CREATE_DEVICE_TEST creates
 * nothing, an idle VM lets the process exit, `await using` / Symbol.asyncDispose, a dead device
 * thread fails fast, one teardown for every destroy(), every handle refuses calls after destroy,
 * and bad arguments fail at the call that is wrong with EINVAL naming the argument.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createVm, EventFd, KvmError, VfioPlatformDevice, guestFromFunction, type VmOptions } from '../../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_VFIO,
  KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_VGIC_ITS_ADDR_TYPE, KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD,
  KVM_IRQ_ROUTING_IRQCHIP,
} from '../../src/uapi/index.js';
import { distPath } from '../../src/kvm/worker-path.js';
import { USER_MMIO_SLOTS } from '../../src/shm/vm-memory.js';
import { buildV3, expectErrno, expectErrnoAsync, spiLine, USER_MMIO_GPA, VmTracker, within } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

describe('KVM_CREATE_DEVICE_TEST ({ test: true })', () => {
  it.each([
    ['vgic v2', KVM_DEV_TYPE_ARM_VGIC_V2], ['vgic v3', KVM_DEV_TYPE_ARM_VGIC_V3], ['ITS', KVM_DEV_TYPE_ARM_VGIC_ITS], ['VFIO', KVM_DEV_TYPE_VFIO],
  ])('%s: returns no handle and creates nothing', (_n, type) => {
    const vm = tracker.track(createVm());
    expect(vm.createDevice(type, { test: true })).toBeUndefined();
    // Nothing was created: the VM can still take vCPUs, and the real device is still the first.
    vm.createVcpu(0);
    if (type === KVM_DEV_TYPE_ARM_VGIC_ITS) {
      expectErrno(() => vm.createDevice(type), 'ENODEV'); // an ITS still needs a GICv3 vgic
      return;
    }
    const dev = vm.createDevice(type);
    expect(dev.type).toBe(type);
  });

  it('a test probe of a v3 vgic on a VM without one does not initialise anything', () => {
    const vm = tracker.track(createVm());
    vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3, { test: true });
    vm.createVcpu(0);
    vm.createVcpu(1);
    expect(vm.vcpus).toHaveLength(2);
  });

  it('an unsupported type is ENODEV, with or without test', () => {
    const vm = tracker.track(createVm());
    expectErrno(() => vm.createDevice(0x7777, { test: true }), 'ENODEV');
    expectErrno(() => vm.createDevice(0x7777), 'ENODEV');
  });
});

describe('an idle VM does not keep the process alive', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vgic-emu-exit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const index = pathToFileURL(distPath('src/index.js')).href;
  const uapiIndex = pathToFileURL(distPath('src/uapi/index.js')).href;

  function runScript(name: string, body: string): Promise<{ code: number | null; stderr: string }> {
    const file = join(dir, `${name}.mjs`);
    writeFileSync(file, `import * as root from ${JSON.stringify(index)};\nimport * as uapi from ${JSON.stringify(uapiIndex)};\nconst v = { ...root, ...uapi };\n${body}\n`);
    return new Promise((resolve) => {
      execFile(process.execPath, [file], { timeout: 20_000, killSignal: 'SIGKILL' }, (err, _out, stderr) => {
        resolve({ code: err ? ((err as { code?: unknown }).code as number | null) ?? null : 0, stderr });
      });
    });
  }

  it.each([
    ['a VM with a vCPU that never ran', 'const vm = v.createVm(); vm.createVcpu(0);'],
    ['a VM whose guests have all returned', 'const vm = v.createVm(); vm.createVcpu(0); vm.createVcpu(1); await vm.run();'],
    ['a GICv3 VM with an irqfd and a VFIO device thread', `
      const vm = v.createVm(); vm.createVcpu(0);
      const gic = vm.createDevice(v.KVM_DEV_TYPE_ARM_VGIC_V3);
      gic.setAttr(v.KVM_DEV_ARM_VGIC_GRP_ADDR, v.KVM_VGIC_V3_ADDR_TYPE_DIST, 0x08000000n);
      gic.setAttr(v.KVM_DEV_ARM_VGIC_GRP_ADDR, v.KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
      gic.setAttr(v.KVM_DEV_ARM_VGIC_GRP_CTRL, v.KVM_DEV_ARM_VGIC_CTRL_INIT);
      const fd = new v.EventFd(); vm.irqfd({ fd, gsi: 8 });
      const dev = new v.VfioPlatformDevice(vm, { irqs: ['edge'] }); dev.setTrigger(0, fd); dev.raise(0, 1);
      await vm.run();`],
  ])('%s: node exits by itself (exit 0)', async (name, body) => {
    const r = await runScript(name.replace(/\W+/g, '-'), body);
    expect(r).toEqual({ code: 0, stderr: '' });
  });
});

describe('Symbol.asyncDispose and destroy()', () => {
  it('a VM is AsyncDisposable: the dispose is its destroy', async () => {
    const vm = createVm();
    vm.createVcpu(0);
    await vm[Symbol.asyncDispose]();
    expect(vm.teardownLog).toContain('vcpus');
    expectErrno(() => vm.createVcpu(1), 'EBADF');
  });

  it('concurrent destroy() calls return one teardown, which has finished when any of them resolves', async () => {
    const { vm } = buildV3({ vcpus: 2, guest: 'irq-echo', args: {} });
    const running = vm.run();
    const a = vm.destroy();
    const b = vm.destroy();
    expect(b).toBe(a);
    await within(b, 10_000, 'the second destroy');
    expect(vm.teardownLog.slice(0, 3)).toEqual(['irqfds', 'vcpus', 'vgic']);
    expect((await within(running, 5_000, 'the run')).map((r) => r.reason)).toEqual(['stopped', 'stopped']);
  });

  it('after destroy() every call on the VM and on each of its handles is EBADF', async () => {
    const { vm, gic } = buildV3({ vcpus: 1 });
    const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, 0x08080000n);
    const kvfio = vm.createDevice(KVM_DEV_TYPE_VFIO);
    const dev = new VfioPlatformDevice(vm, { irqs: ['edge'] });
    const vcpu = vm.vcpus[0]!;
    await vm.destroy();
    const calls: [string, () => unknown][] = [
      ['irqLine', () => vm.irqLine(spiLine(40), 1)],
      ['irqfd', () => vm.irqfd({ fd: new EventFd(), gsi: 1 })],
      ['signalMsi', () => vm.signalMsi({ addressLo: 0x08090040, data: 0, devid: 0, flags: 1 })],
      ['setGsiRouting', () => vm.setGsiRouting([{ gsi: 1, type: KVM_IRQ_ROUTING_IRQCHIP, irqchip: 0, pin: 1 }])],
      ['createDevice', () => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3)],
      ['createDevice test', () => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3, { test: true })],
      ['createVcpu', () => vm.createVcpu(1)],
      ['vgic CTRL_INIT', () => gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT)],
      ['vgic DIST_REGS get', () => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0n)],
      ['vgic hasAttr', () => gic.hasAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT)],
      ['ITS RESET', () => its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_CTRL_RESET)],
      ['ITS getAttr', () => its.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE)],
      ['KVM VFIO FILE_ADD', () => kvfio.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, dev)],
      ['VFIO device setTrigger', () => dev.setTrigger(0, new EventFd())],
      ['new VFIO device', () => new VfioPlatformDevice(vm, { irqs: ['edge'] })],
    ];
    for (const [name, call] of calls) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(KvmError);
      expect((err as KvmError).code, `${name}: ${(err as Error).message}`).toBe('EBADF');
    }
    await expectErrnoAsync(vm.run(), 'EBADF');
    await expectErrnoAsync(vcpu.run(), 'EBADF');
    await expectErrnoAsync(vcpu.interrupt(), 'EBADF');
  });
});

describe('a device thread that died', () => {
  it('is noticed: failure is an EIO KvmError, control calls fail at once, destroy is prompt', async () => {
    const { vm } = buildV3({ vcpus: 1 });
    const dev = new VfioPlatformDevice(vm, { irqs: ['edge'] });
    dev.setTrigger(0, new EventFd());
    // Crash the device thread as a bug in it would: a control message it cannot apply. (Test-only
    // access to the device's control port: no public call sends a malformed message.)
    (dev as unknown as { port: MessagePort }).port.postMessage({ op: 'raise', index: 99, n: 1 });
    let err: unknown;
    try {
      dev.raise(0, 1); // rings the device; it applies the bad message first and dies
    } catch (e) {
      err = e;
    }
    // EIO from the liveness word, not ETIMEDOUT from the 5 s bound.
    expect(err).toBeInstanceOf(KvmError);
    expect((err as KvmError).code).toBe('EIO');
    expect(dev.failure).toBeInstanceOf(KvmError);
    expectErrno(() => dev.start(0, { kind: 'rate', count: 1, periodMs: 1 }), 'EIO');
    await within(vm.destroy(), 2_000, 'destroy with a dead device thread');
    expect(dev.isClosed).toBe(true);
  });
});

describe('bad arguments fail at the call that is wrong (EINVAL naming the argument)', () => {
  it.each([
    [{ bogus: 1 }, /unknown option 'bogus'/],
    [{ lockStats: 'bogus' }, /lockStats must be one of/],
    [{ bugs: 'wfiNoRecheck' }, /bugs must be an array/],
    [{ bugs: ['noSuchBug'] }, /unknown bug seed 'noSuchBug'/],
    [{ nrLr: 1.5 }, /nrLr must be/],
    [{ maxVcpus: '4' }, /maxVcpus must be/],
    [{ locking: 'coarse' }, /locking must be one of/],
    [{ lockdep: 1 }, /lockdep must be a boolean/],
    [null, /options must be an object/],
    ['fine', /options must be an object/],
  ])('createVm(%j)', (opts, msg) => {
    let err: unknown;
    try {
      createVm(opts as VmOptions);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvmError);
    expect((err as KvmError).code).toBe('EINVAL');
    expect((err as Error).message).toMatch(msg);
  });

  it.each([[Number.NaN], ['abc'], [{}], [-7], [2], [0.5]])('irqLine level %j is EINVAL', (level) => {
    const { vm } = tracker.track(buildV3({ vcpus: 1 }));
    let err: unknown;
    try {
      vm.irqLine(spiLine(40), level as number);
    } catch (e) {
      err = e;
    }
    expect((err as KvmError).code).toBe('EINVAL');
    expect((err as Error).message).toMatch(/level must be 0 or 1/);
  });

  it('irqLine takes 0, 1, false and true', () => {
    const { vm } = tracker.track(buildV3({ vcpus: 1 }));
    for (const l of [1, 0, true, false]) vm.irqLine(spiLine(40), l);
  });

  it.each([
    [{ guest: 'no-such-guest' }, /guest 'no-such-guest'/],
    [{ guest: 42 }, /guest must be/],
    [{ guest: { source: 5 } }, /source/],
    [{ mmioHandler: '/no/such/handler.js' }, /mmioHandler/],
    [{ gest: 'idle' }, /unknown option 'gest'/],
  ])('createVcpu(0, %j) is EINVAL at creation, and creates nothing', (opts, msg) => {
    const vm = tracker.track(createVm());
    let err: unknown;
    try {
      vm.createVcpu(0, opts as never);
    } catch (e) {
      err = e;
    }
    expect((err as KvmError).code).toBe('EINVAL');
    expect((err as Error).message).toMatch(msg);
    expect(vm.vcpus).toHaveLength(0);
    vm.createVcpu(0, { guest: 'idle' }); // the id is still free
  });
});

describe('the default KVM_EXIT_MMIO register file', () => {
  it(`holds ${USER_MMIO_SLOTS} distinct addresses; the next one fails the run with ENOSPC naming the limit`, async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, {
      guest: guestFromFunction((cpu, a: { base: number; n: number }) => {
        for (let i = 0; i < a.n; i++) cpu.mmioWrite(a.base + 4 * i, i + 1);
        for (let i = 0; i < a.n; i++) if (cpu.mmioRead(a.base + 4 * i) !== i + 1) throw new Error(`register ${i} lost`);
        cpu.store(0, 1);
        cpu.mmioWrite(a.base + 4 * a.n, 1); // one address too many
      }),
      args: { base: USER_MMIO_GPA, n: USER_MMIO_SLOTS },
    });
    const err = await expectErrnoAsync(within(vm.run(), 60_000, 'the MMIO guest'), 'ENOSPC');
    expect(Atomics.load(vm.ram, 0)).toBe(1); // every register up to the limit read back
    expect(err.message).toMatch(new RegExp(`${USER_MMIO_SLOTS} distinct addresses`));
  });
});

describe('vm.waitForRam: a bounded wait for a guest condition', () => {
  const readyThenSpin = guestFromFunction((cpu, a: { ready: number }) => {
    cpu.store(a.ready, 7);
    while (cpu.load(1) === 0) cpu.relax();
  });

  it('resolves the word once the guest wrote it (number or predicate)', async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: readyThenSpin, args: { ready: 5 } });
    const run = vm.run();
    await expect(vm.waitForRam(5, 7)).resolves.toBe(7);
    await expect(vm.waitForRam(5, (w) => w > 3)).resolves.toBe(7);
    Atomics.store(vm.ram, 1, 1);
    await within(run, 10_000, 'the guest to return');
  });

  it('times out with ETIMEDOUT naming what it waited for', async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: readyThenSpin, args: { ready: 5 } });
    const run = vm.run();
    const e = await expectErrnoAsync(vm.waitForRam(6, 1, { timeoutMs: 50, what: 'word six' }), 'ETIMEDOUT');
    expect(e.message).toMatch(/word six/);
    Atomics.store(vm.ram, 1, 1);
    await within(run, 10_000, 'the guest to return');
  });

  it('fails at once with the guest\'s fault, and with EINVAL when no vCPU runs', async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: guestFromFunction(() => { throw new Error('guest bug'); }) });
    await expectErrnoAsync(vm.waitForRam(0, 1), 'EINVAL'); // nothing running yet
    const run = vm.run().catch((e: unknown) => e);
    await expect(vm.waitForRam(0, 1, { timeoutMs: 10_000 })).rejects.toThrow(/guest bug/);
    await run;
    await expectErrnoAsync(vm.waitForRam(-1, 1), 'EINVAL');
  });
});

describe('KvmError.syscall names the ioctl the call was', () => {
  it.each([
    ['KVM_CREATE_VM', () => createVm({ nrLr: 99 })],
    ['KVM_IRQ_LINE', (w: ReturnType<typeof buildV3>) => w.vm.irqLine(spiLine(40), 2)],
    ['KVM_IRQFD', (w: ReturnType<typeof buildV3>) => w.vm.irqfd({ fd: 'x' as never, gsi: 1 })],
    ['KVM_SET_DEVICE_ATTR', (w: ReturnType<typeof buildV3>) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, 99, 0n)],
    ['KVM_GET_DEVICE_ATTR', (w: ReturnType<typeof buildV3>) => w.gic.getAttr(1.5, 0)],
    ['KVM_HAS_DEVICE_ATTR', (w: ReturnType<typeof buildV3>) => w.gic.hasAttr(4242, 0)],
    ['KVM_CREATE_DEVICE', (w: ReturnType<typeof buildV3>) => w.vm.createDevice(0x7777)],
    ['KVM_CREATE_VCPU', (w: ReturnType<typeof buildV3>) => w.vm.createVcpu(0)],
    ['KVM_GET_ONE_REG', (w: ReturnType<typeof buildV3>) => w.vm.vcpus[0]!.getOneReg(0n)],
    ['VFIO_DEVICE_SET_IRQS', (w: ReturnType<typeof buildV3>) => new VfioPlatformDevice(w.vm, { irqs: ['edge'] }).setIrqs(0, 0, 0, 0)],
  ] as [string, (w: ReturnType<typeof buildV3>) => unknown][])('%s', (syscall, call) => {
    const w = tracker.track(buildV3({ vcpus: 1 }));
    let err: unknown;
    try {
      call(w);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvmError);
    expect((err as KvmError).syscall).toBe(syscall);
  });

  it('KVM_RUN (a rejected promise) after destroy', async () => {
    const { vm } = buildV3({ vcpus: 1 });
    await vm.destroy();
    const e = await expectErrnoAsync(vm.run(), 'EBADF');
    expect(e.syscall).toBe('KVM_RUN');
  });
});
