// Benchmark runner for llama-server built from vendor/llama.cpp with the addon's flags: eight
// slots, a unified KV cache of the same size, prompt caching on, and the top-10 probabilities
// of each generated token. The server listens on 127.0.0.1 only.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

import {
  SCENARIOS,
  WARMUP_COUNT,
  argument,
  generatedTokens,
  runPool,
  scenarioEntries,
  type PromptEntry,
  type SystemReport,
} from '../common.js';

const HOST = '127.0.0.1';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function peakRssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

const prompts = JSON.parse(readFileSync(argument('prompts'), 'utf8')) as PromptEntry[];
const threads = argument('threads');
const port = await freePort();
const server = spawn(
  argument('server'),
  [
    '-m', argument('model'),
    '-np', '8',
    '-kvu',
    '-c', argument('context-size'),
    '-t', threads,
    '-b', '512',
    '-ub', '512',
    '-fa', 'auto',
    '--host', HOST,
    '--port', String(port),
    '--no-webui',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let serverLog = '';
server.stderr.on('data', (chunk: Buffer) => {
  serverLog = (serverLog + chunk.toString()).slice(-4000);
});
const base = `http://${HOST}:${port}`;

try {
  const deadline = Date.now() + 120_000;
  while (true) {
    if (server.exitCode !== null) {
      throw new Error(`llama-server exited with code ${server.exitCode}:\n${serverLog}`);
    }
    const ready = await fetch(`${base}/health`).then((response) => response.ok, () => false);
    if (ready) {
      break;
    }
    if (Date.now() > deadline) {
      throw new Error(`llama-server did not become ready within 120 s:\n${serverLog}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  const complete = async (entry: PromptEntry, maxNewTokens: number): Promise<number> => {
    const response = await fetch(`${base}/completion`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        prompt: entry.tokens,
        n_predict: Math.max(1, maxNewTokens),
        n_probs: 10,
        cache_prompt: true,
        // Negative temperature: greedy, with probabilities from a plain softmax of the logits.
        temperature: -1,
      }),
    });
    if (!response.ok) {
      throw new Error(`llama-server returned HTTP ${response.status}: ${await response.text()}`);
    }
    const body = (await response.json()) as { tokens_predicted: number; completion_probabilities?: unknown[] };
    if (!Array.isArray(body.completion_probabilities) || body.completion_probabilities.length === 0) {
      throw new Error('llama-server returned no token probabilities');
    }
    return maxNewTokens === 0 ? 0 : body.tokens_predicted;
  };

  for (const entry of prompts.slice(-WARMUP_COUNT)) {
    await complete(entry, 0);
  }

  const report: SystemReport = { system: 'llama-server', scenarios: {}, peakRssMiB: 0, notes: [] };
  for (const scenario of SCENARIOS) {
    const items = scenarioEntries(scenario, prompts);
    report.scenarios[scenario.name] = await runPool(items, scenario.concurrency, (entry) =>
      complete(entry, generatedTokens(scenario, entry.reasonFirst)),
    );
  }
  report.peakRssMiB = peakRssOf(server.pid as number);
  report.notes.push(`-np 8 -kvu -c ${argument('context-size')} -t ${threads} -b 512 -ub 512 -fa auto; HTTP on ${HOST}`);
  console.log(JSON.stringify(report));
} finally {
  server.kill('SIGTERM');
}
