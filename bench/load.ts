// HTTP load benchmark: requests per second and latency through `xguard serve` against the
// library called directly, and the server's memory after many requests.
//
// Usage: npm run bench:http [-- --shape 0.6b|tiny] [-- --threads N] [-- --requests N]
//        [-- --rounds N] [-- --rss-requests N] [-- --skip-rss] [-- --json]
//
// Throughput: the same client loop (bench/common.ts runPool, 8 clients) drives both paths, in
// alternating passes (direct, HTTP, direct, HTTP, ...) so that a slow moment of a busy
// machine hits both. The server runs as its own process, as in production. The direct guard
// runs in this process with the same load options. Every request has its own short text
// after the shared chat template, so each pass decodes the same amount of new tokens and no
// pass reuses another pass's prompts.
//
// Memory: a server on the tiny model serves --rss-requests requests (default 5000, about
// half a minute) and reports its resident memory after 500, 1000, 2000, 3000 and 4000 of
// them and at the end. The tiny model keeps this part short, and the server code that could
// leak is the same for every model.
//
// All traffic goes to 127.0.0.1. The run stops itself after MAX_RUN_MS.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { PACKAGE_ROOT } from '../lib/native.js';
import { ensureTestModel } from '../lib/test-model/cache.js';
import type { TestModelShapeName } from '../lib/test-model/qwen3-model.js';
import { XGuard } from '../lib/xguard.js';
import { runPool, type ScenarioFigures } from './common.js';
import { BENCH_INPUTS } from './inputs.js';
import { startServeProcess, type ServeProcess } from './serve-process.js';

const CONCURRENCY = 8;
const PARALLEL = 8;
const CONTEXT_SIZE = 4096;
// Two requests per client on each path before measuring, which load the model's pages and
// put the template prefix into the KV cache.
const WARMUP_REQUESTS = 2 * CONCURRENCY;
const RSS_FIRST_MARK = 500;
const MAX_RUN_MS = 30 * 60_000;

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: '0.6b' },
    threads: { type: 'string' },
    requests: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'rss-requests': { type: 'string', default: '5000' },
    'skip-rss': { type: 'boolean' },
    json: { type: 'boolean' },
  },
});
const shape = values.shape as TestModelShapeName;
const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
const requestsPerPass = Number(values.requests ?? (shape === 'tiny' ? 400 : 64));
const rounds = Number(values.rounds);
const rssRequests = Number(values['rss-requests']);
for (const [name, value] of Object.entries({ threads, requests: requestsPerPass, rounds, 'rss-requests': rssRequests })) {
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench: --${name} must be a positive integer, got ${value}`);
    process.exit(2);
  }
}
if (!values['skip-rss'] && rssRequests <= RSS_FIRST_MARK) {
  console.error(`bench: --rss-requests must be more than ${RSS_FIRST_MARK}`);
  process.exit(2);
}

const log = (line: string): void => console.error(`bench: ${line}`);
const servers: ServeProcess[] = [];
const watchdog = setTimeout(() => {
  log(`stopped after ${MAX_RUN_MS / 60_000} minutes`);
  servers.forEach((server) => server.child.kill('SIGKILL'));
  process.exit(1);
}, MAX_RUN_MS);
watchdog.unref();

/** Returns the text of request `index` in pass `pass`: its own prefix, then one of the benchmark inputs. */
function inputText(pass: string, index: number): string {
  return `Request ${pass}-${index}: ${BENCH_INPUTS[index % BENCH_INPUTS.length] as string}`;
}

async function postClassify(url: string, input: string): Promise<number> {
  const response = await fetch(`${url}/v1/classify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input }),
  });
  const body = (await response.json()) as { usage?: { generatedTokens: number } };
  if (response.status !== 200) {
    throw new Error(`bench: HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.usage?.generatedTokens ?? 0;
}

/** Reads the server's resident memory and V8 heap in use, in MiB, from its /metrics. */
async function serverMemory(url: string): Promise<{ rssMiB: number; heapUsedMiB: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string): number => {
    const line = text.split('\n').find((entry) => entry.startsWith(`${name} `));
    return Number(line?.split(' ')[1]) / 2 ** 20;
  };
  return { rssMiB: read('process_resident_memory_bytes'), heapUsedMiB: read('nodejs_heap_size_used_bytes') };
}

interface PassFigures extends ScenarioFigures {
  path: 'direct' | 'http';
}

async function measureThroughput(modelPath: string): Promise<{ passes: PassFigures[]; serverRssMiB: number }> {
  const loadOptions = { threads, parallel: PARALLEL, contextSize: CONTEXT_SIZE, maxQueue: 256 };
  const server = await startServeProcess([
    '--model', modelPath, '--threads', String(threads), '--parallel', String(PARALLEL), '--context-size', String(CONTEXT_SIZE),
    '--max-queue', '256',
  ]);
  servers.push(server);
  const guard = await XGuard.load(modelPath, loadOptions);

  try {
    const warmup = Array.from({ length: WARMUP_REQUESTS }, (_, index) => index);
    await runPool(warmup, CONCURRENCY, async (index) => (await guard.classify(inputText('warm-direct', index))).usage.generatedTokens);
    await runPool(warmup, CONCURRENCY, (index) => postClassify(server.url, inputText('warm-http', index)));

    const passes: PassFigures[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const pathName of ['direct', 'http'] as const) {
        const items = Array.from({ length: requestsPerPass }, (_, index) => index);
        const tag = `${pathName}${round}`;
        const figures =
          pathName === 'direct'
            ? await runPool(items, CONCURRENCY, async (index) => (await guard.classify(inputText(tag, index))).usage.generatedTokens)
            : await runPool(items, CONCURRENCY, (index) => postClassify(server.url, inputText(tag, index)));
        passes.push({ path: pathName, ...figures });
        log(`${pathName} round ${round + 1}: ${figures.requestsPerSecond.toFixed(2)} req/s, p50 ${figures.p50Ms.toFixed(1)} ms, p99 ${(figures.p99Ms ?? Number.NaN).toFixed(1)} ms`);
      }
    }
    return { passes, serverRssMiB: (await serverMemory(server.url)).rssMiB };
  } finally {
    await guard.close();
    const code = await server.stop();
    if (code !== 0) {
      log(`the server exited with code ${code}`);
    }
  }
}

/** Returns the request counts after which the server's resident memory is read. */
function memoryMarks(total: number): number[] {
  const marks = [RSS_FIRST_MARK, 1000, 2000, 3000, 4000].filter((mark) => mark < total);
  return [...marks, total];
}

interface MemoryFigures {
  samples: Array<{ requests: number; rssMiB: number; heapUsedMiB: number }>;
  requestsPerSecond: number;
}

async function measureMemory(): Promise<MemoryFigures> {
  const server = await startServeProcess(['--model', await ensureTestModel('tiny'), '--threads', '1']);
  servers.push(server);
  try {
    const samples: MemoryFigures['samples'] = [];
    let sent = 0;
    let busyMs = 0;
    for (const mark of memoryMarks(rssRequests)) {
      const items = Array.from({ length: mark - sent }, (_, index) => sent + index);
      const figures = await runPool(items, CONCURRENCY, (index) => postClassify(server.url, inputText('rss', index)));
      busyMs += figures.wallMs;
      sent = mark;
      const memory = await serverMemory(server.url);
      samples.push({ requests: mark, ...memory });
      log(`after ${mark} requests: RSS ${memory.rssMiB.toFixed(0)} MiB, V8 heap used ${memory.heapUsedMiB.toFixed(0)} MiB`);
    }
    return { samples, requestsPerSecond: (sent * 1000) / busyMs };
  } finally {
    await server.stop();
  }
}

function summarize(passes: PassFigures[], pathName: 'direct' | 'http'): { requestsPerSecond: number; p50Ms: number; p99Ms: number } {
  const selected = passes.filter((pass) => pass.path === pathName);
  const mean = (read: (pass: PassFigures) => number): number => selected.reduce((sum, pass) => sum + read(pass), 0) / selected.length;
  return { requestsPerSecond: mean((pass) => pass.requestsPerSecond), p50Ms: mean((pass) => pass.p50Ms), p99Ms: mean((pass) => pass.p99Ms ?? Number.NaN) };
}

const modelPath = await ensureTestModel(shape);
log(`${shape} model, ${threads} threads, ${CONCURRENCY} clients, ${rounds} rounds of ${requestsPerPass} requests per path`);
const { passes, serverRssMiB } = await measureThroughput(modelPath);
const direct = summarize(passes, 'direct');
const http = summarize(passes, 'http');
const roundRatios = Array.from({ length: rounds }, (_, round) => {
  const [directPass, httpPass] = passes.slice(round * 2, round * 2 + 2);
  return (httpPass?.requestsPerSecond ?? Number.NaN) / (directPass?.requestsPerSecond ?? Number.NaN);
});
// The median of the per-round ratios: one pass slowed by other work on the machine moves it
// less than it moves the ratio of the means.
const sortedRatios = [...roundRatios].sort((a, b) => a - b);
const medianRoundRatio = ((sortedRatios[Math.floor((rounds - 1) / 2)] as number) + (sortedRatios[Math.floor(rounds / 2)] as number)) / 2;
const memory = values['skip-rss'] ? null : await measureMemory();

const summary = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
  node: process.version,
  model: path.basename(modelPath),
  threads,
  concurrency: CONCURRENCY,
  requestsPerPass,
  passes,
  direct,
  http,
  throughputRatio: http.requestsPerSecond / direct.requestsPerSecond,
  roundRatios,
  medianRoundRatio,
  serverRssMiB,
  memory,
};
const outputDir = path.join(PACKAGE_ROOT, '.cache', 'bench');
mkdirSync(outputDir, { recursive: true });
writeFileSync(path.join(outputDir, `load-${shape}.json`), JSON.stringify(summary, null, 2));
clearTimeout(watchdog);

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  console.log('| path | req/s | p50 ms | p99 ms |');
  console.log('|---|---|---|---|');
  console.log(`| direct | ${direct.requestsPerSecond.toFixed(2)} | ${direct.p50Ms.toFixed(1)} | ${direct.p99Ms.toFixed(1)} |`);
  console.log(`| HTTP | ${http.requestsPerSecond.toFixed(2)} | ${http.p50Ms.toFixed(1)} | ${http.p99Ms.toFixed(1)} |`);
  console.log('');
  console.log(
    `HTTP / direct throughput: ${summary.throughputRatio.toFixed(3)} from the means, ${medianRoundRatio.toFixed(3)} median of the rounds ` +
      `(${roundRatios.map((ratio) => ratio.toFixed(3)).join(', ')})`,
  );
  console.log(`server RSS after the throughput passes: ${serverRssMiB.toFixed(0)} MiB`);
  if (memory !== null) {
    const samples = memory.samples.map((sample) => `${sample.rssMiB.toFixed(0)} MiB after ${sample.requests}`).join(', ');
    console.log(`server RSS on the tiny model: ${samples} (${memory.requestsPerSecond.toFixed(0)} req/s)`);
  }
}
