// Runs `xguard serve` in a child process for the load benchmark, on a free port of 127.0.0.1.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { PACKAGE_ROOT } from '../lib/native.js';

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** Sends SIGTERM and resolves with the exit code once the server has drained and exited. */
  stop(): Promise<number | null>;
}

const START_TIMEOUT_MS = 120_000;

/**
 * Starts the server with `args` after `serve --port 0` and resolves once the model is loaded.
 * The server must log at level info, because the start lines are read from its log.
 */
export function startServeProcess(args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PACKAGE_ROOT, 'lib/cli/main.ts'), 'serve', '--port', '0', ...args], {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  return new Promise((resolve, reject) => {
    let url = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`xguard serve did not load the model within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`xguard serve exited with code ${code} before it was ready`));
    });

    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('{')) {
        return;
      }
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (typeof entry.url === 'string') {
        url = entry.url;
      }
      if (entry.msg === 'model loaded; accepting requests') {
        clearTimeout(timer);
        // The request log lines that follow are read and dropped, as cheaply as possible.
        lines.close();
        child.stdout!.resume();
        resolve({
          url,
          child,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
  });
}
