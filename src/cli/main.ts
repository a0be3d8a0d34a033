#!/usr/bin/env node
/**
 * The vgic-emu command. Exit codes: 0 success, 1 a check failed, 2 usage error.
 * Every command is a row of COMMANDS: its flags (one parser, args.ts), its usage, its action.
 */
import { packageVersion } from '../version.js';
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec } from './args.js';
import { formatSummary, runDemo } from './demo.js';
import { formatVfioSummary, runVfioDemo } from './demo-vfio.js';
import { STRESS_USAGE, stressCommand } from './stress.js';
import { MERGE_USAGE, mergeCommand } from './merge.js';
import { LOCKSTAT_USAGE, lockstatCommand } from './lockstat.js';
import { describeLayout } from '../shm/layout.js';
import { DIST, IRQ, IRQFD, ITS, ITS_CACHE, ITS_COLLECTION, ITS_DEVICE, ITS_ITE, LR, PHYS_IRQ, ROUTE, TIMER_CTX, VCPU } from '../shm/layouts.js';
import { LOCK_CLASSES } from '../sync/lock-classes.js';

const DEMO_FLAGS: FlagSpec[] = [
  { name: 'gic', kind: 'string', choices: ['v2', 'v3'], default: 'v3', help: 'GIC model' },
  { name: 'vcpus', kind: 'number', integer: true, min: 1, max: 64, default: 4, help: 'number of vCPUs (worker threads; GICv2: up to 8)' },
  { name: 'seconds', kind: 'number', min: 0.1, max: 86400, default: 3, help: 'how long to inject' },
  { name: 'spis', kind: 'number', integer: true, min: 1, max: 900, default: 16, help: 'number of edge SPIs in flight' },
  { name: 'locking', kind: 'string', choices: ['fine', 'global'], default: 'fine', help: "lock design: 'fine' (2016+) or 'global' (2014)" },
  { name: 'json', kind: 'boolean', help: 'print the summary as JSON' },
  { name: 'vfio', kind: 'boolean', help: 'VFIO device threads -> irqfd/resamplefd -> forwarding, in QEMU\'s start-up order' },
  { name: 'early-irqfd', kind: 'boolean', help: 'with --vfio: first try KVM_IRQFD before CTRL_INIT (shows the EAGAIN)' },
  { name: 'devices', kind: 'number', integer: true, min: 1, max: 8, default: 2, help: 'with --vfio: device worker threads' },
  { name: 'lines', kind: 'number', integer: true, min: 1, max: 32, default: 2, help: 'with --vfio: level interrupt lines per device' },
  { name: 'no-forward', kind: 'boolean', help: 'with --vfio: do not forward the lines midway' },
  HELP_FLAG,
];

const LAYOUT_FLAGS: FlagSpec[] = [HELP_FLAG];

interface Command {
  summary: string;
  usage: () => string;
  run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'boot a multi-vCPU VM and exchange SPIs and IPIs, then check nothing was lost\n            (demo --vfio: device threads, irqfd + resamplefd, forwarding; --early-irqfd)',
    usage: () => `usage: vgic-emu demo [options]\n\nExit codes: 0 nothing lost, 1 an interrupt was lost, 2 usage error.\n\n${flagHelp(DEMO_FLAGS)}\n`,
    run: demoCommand,
  },
  stress: {
    summary: 'find interrupt races: run scenarios under chaos/controlled scheduling',
    usage: () => STRESS_USAGE,
    run: stressCommand,
  },
  lockstat: {
    summary: 'lock-contention benchmark: fine vs global locking, lock_stat tables, HTML plots',
    usage: () => LOCKSTAT_USAGE,
    run: lockstatCommand,
  },
  merge: {
    summary: 'combine the --json summaries of the shards of one stress campaign (stress --shard i/n)',
    usage: () => MERGE_USAGE,
    run: async (argv) => mergeCommand(argv),
  },
  layout: {
    summary: 'print the shared-memory layout tables and the lock order',
    usage: () => `usage: vgic-emu layout\n\n${flagHelp(LAYOUT_FLAGS)}\n`,
    run: layoutCommand,
  },
};


const USAGE = `usage: vgic-emu <command> [options]
       vgic-emu <command> --help
       vgic-emu --version

commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(8)}  ${c.summary}`).join('\n')}
  help      show this help, or a command's: vgic-emu help <command>
`;

async function demoCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, DEMO_FLAGS);
  if (f.help) {
    process.stdout.write(COMMANDS.demo!.usage());
    return 0;
  }
  const vcpus = f.vcpus as number;
  if (f.vfio || f['early-irqfd']) {
    const devices = f.devices as number;
    const lines = f.lines as number;
    if (f.gic === 'v2') throw new UsageError('--vfio uses a GICv3');
    if (devices * lines > 32) throw new UsageError('devices x lines must be at most 32');
    const summary = await runVfioDemo({
      vcpus, devices, lines, seconds: f.seconds as number, forward: !f['no-forward'], earlyIrqfd: f['early-irqfd'] === true,
      out: f.json ? process.stderr : process.stdout,
    });
    process.stdout.write(f.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatVfioSummary(summary)}\n`);
    return summary.ok ? 0 : 1;
  }
  if (f.gic === 'v2' && vcpus > 8) throw new UsageError('--vcpus must be at most 8 with --gic v2');
  const summary = await runDemo({
    gic: f.gic as 'v2' | 'v3',
    vcpus,
    seconds: f.seconds as number,
    spis: f.spis as number,
    locking: f.locking as 'fine' | 'global',
    out: f.json ? process.stderr : process.stdout,
  });
  process.stdout.write(f.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary.ok ? 0 : 1;
}

async function layoutCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, LAYOUT_FLAGS);
  if (f.help) {
    process.stdout.write(COMMANDS.layout!.usage());
    return 0;
  }
  const out: string[] = [];
  for (const l of [DIST, VCPU, LR, TIMER_CTX, IRQ, IRQFD, PHYS_IRQ, ROUTE, ITS, ITS_DEVICE, ITS_ITE, ITS_COLLECTION, ITS_CACHE]) out.push(`${describeLayout(l)}\n\n`);
  out.push('lock order (outermost first):\n');
  for (const c of [...LOCK_CLASSES].sort((a, b) => a.rank - b.rank)) out.push(`  ${c.rank}  ${c.name.padEnd(14)} ${c.kind.padEnd(6)} ${c.protects}\n`);
  process.stdout.write(out.join(''));
  return 0;
}

/** Which command a usage error belongs to, so that its usage is the one printed. */
let current: string | null = null;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const topic = cmd === 'help' ? rest[0] : undefined;
    if (topic !== undefined) {
      const c = COMMANDS[topic];
      if (!c) throw new UsageError(`unknown command '${topic}'`);
      process.stdout.write(c.usage());
      return 0;
    }
    (cmd === undefined ? process.stderr : process.stdout).write(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!c) throw new UsageError(cmd.startsWith('-') ? `unknown option '${cmd}' (options go after the command)` : `unknown command '${cmd}'`);
  current = cmd;
  return c.run(rest);
}

// A closed pipe (vgic-emu layout | head -3) is the reader's choice, not an error: exit quietly.
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      const usage = current ? COMMANDS[current]!.usage() : USAGE;
      process.stderr.write(`vgic-emu${current ? ` ${current}` : ''}: ${e.message}\n\n${usage}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`vgic-emu: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
