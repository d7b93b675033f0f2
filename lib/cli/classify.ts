// `xguard classify`: judges one request, or a request and its response, and prints the risk.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { XGuardError } from '../errors.js';
import { ensureTestModel } from '../test-model/cache.js';
import type { ChatMessage } from '../conversation.js';
import type { ClassifyOptions, LoadOptions } from '../options.js';
import { XGuard } from '../xguard.js';
import { parseInteger } from './args.js';
import { formatResultTable } from './format.js';

export const CLASSIFY_USAGE = `usage: xguard classify [text] [options]

Judges a request (text), or a request and the model's response to it, and prints the risk
label with its scores. Reads the request from standard input when no text is given.

options:
  --response <text>       the LLM response to judge together with the request
  --policy <file>         dynamic policy file: "- id: Name" entries with indented criteria
  --reason-first          ask for the explanation first and the label after it
  --explain               generate the explanation after the label
  --max-new-tokens <n>    maximum generated tokens with --explain (default 256) or
                          --reason-first (default 512)
  --top-k <n>             top tokens read at the label position (default 10)
  --model <file>          XGuard GGUF model; without it a generated test model with random
                          weights is used, whose labels and scores mean nothing
  --context-size <n>      KV cache size in tokens (default 4096)
  --threads <n>           CPU threads (default: all)
  --json                  print the full result as JSON
  -h, --help              show this help`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the command; returns the process exit code. */
export async function runClassify(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      response: { type: 'string' },
      policy: { type: 'string' },
      'reason-first': { type: 'boolean' },
      explain: { type: 'boolean' },
      'max-new-tokens': { type: 'string' },
      'top-k': { type: 'string' },
      model: { type: 'string' },
      'context-size': { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(CLASSIFY_USAGE);
    return 0;
  }

  let request = positionals.join(' ');
  if (positionals.length === 0) {
    if (process.stdin.isTTY) {
      console.error(`xguard classify: no text given and standard input is a terminal.\n\n${CLASSIFY_USAGE}`);
      return 2;
    }
    request = await readStdin();
  }
  const input: ChatMessage[] = [{ role: 'user', content: request }];
  if (values.response !== undefined) {
    input.push({ role: 'assistant', content: values.response });
  }

  const options: ClassifyOptions = {};
  if (values.policy !== undefined) {
    try {
      options.policy = await readFile(values.policy, 'utf8');
    } catch (error) {
      throw new XGuardError(
        'ERR_INVALID_POLICY',
        `Policy file ${JSON.stringify(values.policy)} could not be read: ${(error as Error).message}.`,
      );
    }
  }
  if (values['reason-first']) options.reasonFirst = true;
  if (values.explain) options.explain = true;
  const maxNewTokens = parseInteger('max-new-tokens', values['max-new-tokens']);
  if (maxNewTokens !== undefined) {
    if (!options.explain && !options.reasonFirst) {
      throw new XGuardError('ERR_INVALID_OPTION', '--max-new-tokens applies only with --explain or --reason-first; add one of them.');
    }
    options.maxNewTokens = maxNewTokens;
  }
  const topK = parseInteger('top-k', values['top-k']);
  if (topK !== undefined) options.topK = topK;

  const loadOptions: LoadOptions = {};
  const contextSize = parseInteger('context-size', values['context-size']);
  if (contextSize !== undefined) loadOptions.contextSize = contextSize;
  const threads = parseInteger('threads', values.threads);
  if (threads !== undefined) loadOptions.threads = threads;

  let modelPath = values.model;
  if (modelPath === undefined) {
    modelPath = await ensureTestModel('tiny');
    console.error(
      `xguard: no --model given, so this uses the generated test model ${modelPath}.\n` +
        'xguard: its weights are random: the label and scores below mean nothing. Pass --model <file.gguf> for real results.',
    );
  }

  const guard = await XGuard.load(modelPath, loadOptions);
  try {
    const result = await guard.classify(input, options);
    console.log(values.json ? JSON.stringify(result, null, 2) : formatResultTable(result));
  } finally {
    await guard.close();
  }
  return 0;
}
