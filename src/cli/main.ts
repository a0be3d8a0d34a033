#!/usr/bin/env node
/**
 * The vgic-emu command. Exit codes: 0 success, 1 a check failed, 2 usage error.
 */
import { flagHelp, parseFlags, UsageError, type FlagSpec } from './args.js';
import { formatSummary, runDemo } from './demo.js';
import { formatVfioSummary, runVfioDemo } from './demo-vfio.js';
import { stressCommand } from './stress.js';
import { describeLayout } from '../shm/layout.js';
import { DIST, IRQ, IRQFD, ITS, ITS_CACHE, ITS_COLLECTION, ITS_DEVICE, ITS_ITE, LR, PHYS_IRQ, ROUTE, VCPU } from '../shm/layouts.js';
import { LOCK_CLASSES } from '../sync/lock-classes.js';

const DEMO_FLAGS: FlagSpec[] = [
  { name: 'gic', kind: 'string', choices: ['v2', 'v3'], default: 'v3', help: 'GIC model' },
  { name: 'vcpus', kind: 'number', default: 4, help: 'number of vCPUs (worker threads)' },
  { name: 'seconds', kind: 'number', default: 3, help: 'how long to inject' },
  { name: 'spis', kind: 'number', default: 16, help: 'number of edge SPIs in flight' },
  { name: 'locking', kind: 'string', choices: ['fine', 'global'], default: 'fine', help: "lock design: 'fine' (2016+) or 'global' (2014)" },
  { name: 'json', kind: 'boolean', help: 'print the summary as JSON' },
  { name: 'vfio', kind: 'boolean', help: 'VFIO device threads -> irqfd/resamplefd -> forwarding, in QEMU\'s start-up order' },
  { name: 'early-irqfd', kind: 'boolean', help: 'with --vfio: first try KVM_IRQFD before CTRL_INIT (shows the EAGAIN)' },
  { name: 'devices', kind: 'number', default: 2, help: 'with --vfio: device worker threads' },
  { name: 'lines', kind: 'number', default: 2, help: 'with --vfio: level interrupt lines per device' },
  { name: 'no-forward', kind: 'boolean', help: 'with --vfio: do not forward the lines midway' },
  { name: 'help', kind: 'boolean', help: 'show this help' },
];

const USAGE = `usage: vgic-emu <command> [options]

commands:
  demo      boot a multi-vCPU VM and exchange SPIs and IPIs, then check nothing was lost
            (demo --vfio: device threads, irqfd + resamplefd, forwarding; --early-irqfd)
  stress    find interrupt races: run scenarios under chaos/controlled scheduling (stress --help)
  layout    print the shared-memory layout tables and the lock order
  help      show this help

vgic-emu demo options:
${flagHelp(DEMO_FLAGS)}
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    case 'demo': {
      const f = parseFlags(rest, DEMO_FLAGS);
      if (f.help) {
        process.stdout.write(USAGE);
        return 0;
      }
      const vcpus = f.vcpus as number;
      if (f.vfio || f['early-irqfd']) {
        const devices = f.devices as number;
        const lines = f.lines as number;
        if (f.gic === 'v2') throw new UsageError('--vfio uses a GICv3');
        if (!Number.isInteger(vcpus) || vcpus > 64) throw new UsageError('--vcpus must be an integer up to 64');
        if (!Number.isInteger(devices) || devices > 8) throw new UsageError('--devices must be an integer up to 8');
        if (!Number.isInteger(lines) || devices * lines > 32) throw new UsageError('--lines must be an integer, and devices x lines at most 32');
        const summary = await runVfioDemo({
          vcpus, devices, lines, seconds: f.seconds as number, forward: !f['no-forward'], earlyIrqfd: f['early-irqfd'] === true,
          out: f.json ? process.stderr : process.stdout,
        });
        process.stdout.write(f.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatVfioSummary(summary)}\n`);
        return summary.ok ? 0 : 1;
      }
      const spis = f.spis as number;
      if (!Number.isInteger(vcpus) || vcpus > (f.gic === 'v2' ? 8 : 64)) throw new UsageError(`--vcpus must be an integer up to ${f.gic === 'v2' ? 8 : 64}`);
      if (!Number.isInteger(spis) || spis > 900) throw new UsageError('--spis must be an integer up to 900');
      const summary = await runDemo({
        gic: f.gic as 'v2' | 'v3',
        vcpus,
        seconds: f.seconds as number,
        spis,
        locking: f.locking as 'fine' | 'global',
        out: f.json ? process.stderr : process.stdout,
      });
      process.stdout.write(f.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
      return summary.ok ? 0 : 1;
    }
    case 'stress':
      return stressCommand(rest);
    case 'layout': {
      for (const l of [DIST, VCPU, LR, IRQ, IRQFD, PHYS_IRQ, ROUTE, ITS, ITS_DEVICE, ITS_ITE, ITS_COLLECTION, ITS_CACHE]) process.stdout.write(`${describeLayout(l)}\n\n`);
      process.stdout.write('lock order (outermost first):\n');
      for (const c of [...LOCK_CLASSES].sort((a, b) => a.rank - b.rank)) process.stdout.write(`  ${c.rank}  ${c.name.padEnd(14)} ${c.kind.padEnd(6)} ${c.protects}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`vgic-emu: ${e.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`vgic-emu: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
