// `xguard serve`: runs the HTTP moderation server until SIGTERM or SIGINT.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { parseThresholds } from '../decide.js';
import { XGuardError } from '../errors.js';
import type { LoadOptions } from '../options.js';
import type { ServerLogLevel, ServerOptions } from '../server/options.js';
import { ensureTestModel } from '../test-model/cache.js';
import { parseInteger } from './args.js';

export const SERVE_USAGE = `usage: xguard serve [options]

Serves the model over HTTP: POST /v1/classify, POST /v1/moderations (OpenAI's moderation
API), GET /health, GET /metrics (Prometheus). Logs one JSON line per request to standard
output. SIGTERM or SIGINT stops it after the running requests finish.

options:
  --model <file>            XGuard GGUF model; without it a generated test model with random
                            weights is used, whose labels and scores mean nothing
  --host <address>          address to bind (default 127.0.0.1: this machine only; 0.0.0.0
                            or :: accepts connections from the network)
  --port <n>                TCP port (default 8080; 0 picks a free port)
  --api-key <key>           bearer key every request except /health must send; prefer the
                            XGUARD_API_KEY environment variable, which other users cannot
                            read from the process list
  --thresholds <file>       JSON thresholds file (default: 0.5 for requests, 0.8 for responses)
  --parallel <n>            requests decoded together (default 8)
  --max-queue <n>           requests waiting beyond the parallel ones; more get 429 (default 256)
  --timeout-ms <n>          time limit of one request in ms, waiting included; later it
                            gets 504 (default 30000)
  --body-limit <bytes>      maximum request body; larger ones get 413 (default 1048576)
  --max-input-tokens <n>    maximum prompt tokens of one input, chat template included; longer
                            inputs get 413 (default: the context size)
  --context-size <n>        KV cache size in tokens (default 4096)
  --threads <n>             CPU threads (default: all)
  --grace-ms <n>            time a shutdown waits for running requests (default 25000)
  --log-level <level>       fatal, error, warn, info, debug or silent (default info)
  --log-content             also log the request texts (off by default: logs carry only ids,
                            sizes, labels and latency)
  -h, --help                show this help`;

const MIN_NODE_MAJOR = 20;

async function readThresholds(file: string): Promise<ServerOptions['thresholds']> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new XGuardError('ERR_INVALID_OPTION', `Thresholds file ${JSON.stringify(file)} could not be read: ${(error as Error).message}.`);
  }
  return parseThresholds(text, `Thresholds file ${JSON.stringify(file)}`);
}

function loadOptionsFrom(values: Record<string, string | boolean | undefined>): LoadOptions {
  const load: LoadOptions = {};
  const integer = (name: string): number | undefined => parseInteger(name, values[name] as string | undefined);
  const parallel = integer('parallel');
  if (parallel !== undefined) load.parallel = parallel;
  const maxQueue = integer('max-queue');
  if (maxQueue !== undefined) load.maxQueue = maxQueue;
  const contextSize = integer('context-size');
  if (contextSize !== undefined) load.contextSize = contextSize;
  const threads = integer('threads');
  if (threads !== undefined) load.threads = threads;
  return load;
}

/** Runs the command until the server has stopped, and returns the process exit code. */
export async function runServe(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      model: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'api-key': { type: 'string' },
      thresholds: { type: 'string' },
      parallel: { type: 'string' },
      'max-queue': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'body-limit': { type: 'string' },
      'max-input-tokens': { type: 'string' },
      'context-size': { type: 'string' },
      threads: { type: 'string' },
      'grace-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'log-content': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    console.error(`xguard serve: unexpected argument ${JSON.stringify(positionals[0])}. Serve takes only options.\n\n${SERVE_USAGE}`);
    return 2;
  }
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  if (nodeMajor < MIN_NODE_MAJOR) {
    console.error(`xguard serve: needs Node.js ${MIN_NODE_MAJOR} or later (Fastify 5); this is ${process.version}. Upgrade Node.js.`);
    return 1;
  }

  const options: ServerOptions = { modelPath: values.model ?? '', load: loadOptionsFrom(values), logContent: values['log-content'] ?? false };
  if (values.host !== undefined) options.host = values.host;
  const port = parseInteger('port', values.port);
  if (port !== undefined) options.port = port;
  const timeoutMs = parseInteger('timeout-ms', values['timeout-ms']);
  if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
  const bodyLimit = parseInteger('body-limit', values['body-limit']);
  if (bodyLimit !== undefined) options.bodyLimit = bodyLimit;
  const maxInputTokens = parseInteger('max-input-tokens', values['max-input-tokens']);
  if (maxInputTokens !== undefined) options.maxInputTokens = maxInputTokens;
  const graceMs = parseInteger('grace-ms', values['grace-ms']);
  if (graceMs !== undefined) options.graceMs = graceMs;
  if (values['log-level'] !== undefined) options.logLevel = values['log-level'] as ServerLogLevel;
  const apiKey = values['api-key'] ?? process.env['XGUARD_API_KEY'];
  if (apiKey !== undefined && apiKey !== '') options.apiKey = apiKey;
  if (values.thresholds !== undefined) options.thresholds = await readThresholds(values.thresholds);

  if (values.model === undefined) {
    options.modelPath = await ensureTestModel('tiny');
    console.error(
      `xguard: no --model given, so this serves the generated test model ${options.modelPath}.\n` +
        'xguard: its weights are random: its labels and scores mean nothing. Pass --model <file.gguf> for real results.',
    );
  }

  // Loaded here, not at the top, so that the other commands never load the HTTP framework.
  const { startServer } = await import('../server/server.js');
  const server = await startServer(options);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      // A second signal means the operator does not want to wait for the grace period.
      console.error(`xguard serve: ${signal} received again; exiting without waiting for running requests.`);
      process.exit(1);
    }
    void server.close();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  // A failed load rejects here, after the server has logged the reason and closed itself.
  await server.ready;
  await server.closed;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return 0;
}
