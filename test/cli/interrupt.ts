/**
 * Run the built vgic-emu bin and press Ctrl-C once: SIGINT the first time stderr matches `when`
 * (a second Ctrl-C kills at once, by design, so only one), then wait for the exit, bounded.
 * The CLI tests of every long command (stress, lockstat) check their Ctrl-C handling with it.
 */
import { spawn } from 'node:child_process';
import { distPath } from '../../src/kvm/worker-path.js';

export async function interruptCli(args: readonly string[], cwd: string, when: RegExp, boundMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [distPath('src/cli/main.js'), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!interrupted && when.test(stderr)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((res, rej) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`no exit within ${boundMs} ms (interrupted: ${interrupted}); stderr: ${stderr}`));
    }, boundMs);
    child.on('exit', (c) => {
      clearTimeout(t);
      res(c);
    });
  });
  return { code, stdout, stderr };
}
