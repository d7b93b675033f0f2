// The benchmark: xguard-node against llama-server and node-llama-cpp on the same prompts, in
// the same run, plus the decode-only limit. Each system runs in its own process, one after the
// other, so each gets the whole machine and its own peak RSS.
//
// Usage: npm run bench [-- --json] [-- --threads N] [-- --only xguard,limit]
// Needs the 0.6b test model (generated on first use, about 800 MB), builds llama-server into
// bench/.build and installs node-llama-cpp into bench/node_modules on first use.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { PACKAGE_ROOT } from '../lib/native.js';
import { ensureTestModel } from '../lib/test-model/cache.js';
import { XGuard } from '../lib/xguard.js';
import { ensureLlamaServer } from './build-llama-server.js';
import { BENCH_DIR, SCENARIOS, loadPolicy, loadWorkload, type PromptEntry, type SystemReport } from './common.js';

const SYSTEMS = ['xguard', 'llama-server', 'node-llama-cpp', 'limit'] as const;
type SystemName = (typeof SYSTEMS)[number];

// Every system gets the same KV cache: eight clients with room for the longest prompts.
const CONTEXT_SIZE = 8192;

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' },
    threads: { type: 'string' },
    only: { type: 'string' },
  },
});
const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
const only = values.only === undefined ? [...SYSTEMS] : (values.only.split(',') as SystemName[]);
for (const name of only) {
  if (!SYSTEMS.includes(name)) {
    console.error(`bench: unknown system ${JSON.stringify(name)}; expected some of ${SYSTEMS.join(', ')}`);
    process.exit(2);
  }
}
const log = (line: string): void => console.error(`bench: ${line}`);

const model = await ensureTestModel('0.6b');
const workDir = path.join(PACKAGE_ROOT, '.cache', 'bench');
mkdirSync(workDir, { recursive: true });

// The same token ids for every peer: the library's own rendering of each workload entry.
const promptsFile = path.join(workDir, 'prompts.json');
{
  const guard = await XGuard.load(model, { threads: 1, contextSize: 1024 });
  const prompts: PromptEntry[] = [];
  for (const entry of loadWorkload()) {
    const options = entry.policy === null ? { reasonFirst: entry.reasonFirst } : { reasonFirst: entry.reasonFirst, policy: loadPolicy(entry.policy) };
    const prompt = await guard.formatPrompt(entry.input, options);
    prompts.push({ id: entry.id, kind: entry.kind, tokens: [...prompt.tokens], reasonFirst: entry.reasonFirst });
  }
  await guard.close();
  writeFileSync(promptsFile, JSON.stringify(prompts));
  const lengths = prompts.map((prompt) => prompt.tokens.length);
  log(`${prompts.length} prompts, ${Math.min(...lengths)} to ${Math.max(...lengths)} tokens`);
}

const runnerArgs = ['--model', model, '--prompts', promptsFile, '--threads', String(threads), '--context-size', String(CONTEXT_SIZE)];

function runSystem(name: SystemName, extra: string[] = []): SystemReport {
  log(`running ${name}`);
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'systems', `${name}.ts`), ...runnerArgs, ...extra], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
  });
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  if (child.status !== 0 || !last.startsWith('{')) {
    throw new Error(`bench: ${name} failed with exit code ${child.status}:\n${child.stderr.slice(-4000)}`);
  }
  return JSON.parse(last) as SystemReport;
}

const reports: Partial<Record<SystemName, SystemReport>> = {};
for (const name of only) {
  if (name === 'llama-server') {
    reports[name] = runSystem(name, ['--server', await ensureLlamaServer(log)]);
  } else if (name === 'node-llama-cpp') {
    if (!existsSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp'))) {
      log('installing node-llama-cpp 3.21.1 into bench/node_modules');
      const install = spawnSync('npm', ['install', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], {
        stdio: 'inherit',
        env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
      });
      if (install.status !== 0) {
        throw new Error('bench: npm install of node-llama-cpp failed');
      }
    }
    reports[name] = runSystem(name);
  } else {
    reports[name] = runSystem(name);
  }
}

const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? null : a / b;
const x = reports.xguard?.scenarios;
const ratios = {
  throughputVsLlamaServer: ratio(x?.c8?.requestsPerSecond, reports['llama-server']?.scenarios.c8?.requestsPerSecond),
  throughputVsNodeLlamaCpp: ratio(x?.c8?.requestsPerSecond, reports['node-llama-cpp']?.scenarios.c8?.requestsPerSecond),
  latencyVsLimit: ratio(x?.c1?.p50Ms, reports.limit?.scenarios.c1?.p50Ms),
  shortThroughputVsLlamaServer: ratio(x?.short8?.requestsPerSecond, reports['llama-server']?.scenarios.short8?.requestsPerSecond),
  shortThroughputVsNodeLlamaCpp: ratio(x?.short8?.requestsPerSecond, reports['node-llama-cpp']?.scenarios.short8?.requestsPerSecond),
  explainThroughputVsLlamaServer: ratio(x?.explain?.requestsPerSecond, reports['llama-server']?.scenarios.explain?.requestsPerSecond),
  explainThroughputVsNodeLlamaCpp: ratio(x?.explain?.requestsPerSecond, reports['node-llama-cpp']?.scenarios.explain?.requestsPerSecond),
};
const summary = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
  node: process.version,
  model: path.basename(model),
  threads,
  contextSize: CONTEXT_SIZE,
  scenarios: SCENARIOS,
  systems: reports,
  ratios,
};
writeFileSync(path.join(workDir, 'last.json'), JSON.stringify(summary, null, 2));

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const fixed = (value: number | undefined, digits = 1): string => (value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits));
  const header = ['system', 'c1 p50 ms', 'c1 p95 ms', 'c8 req/s', 'c8 p50 ms', 'short c8 req/s', 'explain req/s', 'explain tok/s', 'peak RSS MiB'];
  const rows = only.map((name) => {
    const s = reports[name]?.scenarios;
    const explainTokensPerSecond = s?.explain === undefined ? undefined : (s.explain.generatedTokens * 1000) / s.explain.wallMs;
    return [
      name,
      fixed(s?.c1?.p50Ms),
      fixed(s?.c1?.p95Ms),
      fixed(s?.c8?.requestsPerSecond, 2),
      fixed(s?.c8?.p50Ms),
      fixed(s?.short8?.requestsPerSecond, 2),
      fixed(s?.explain?.requestsPerSecond, 2),
      fixed(explainTokensPerSecond),
      fixed(reports[name]?.peakRssMiB, 0),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
  rows.forEach((row) => console.log(line(row)));
  console.log('');
  for (const [name, value] of Object.entries(ratios)) {
    console.log(`${name}: ${value === null ? '-' : value.toFixed(2)}`);
  }
}
