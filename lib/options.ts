// Option types of the public API and their validation. Each check names the option, the
// value it got and the accepted range, before anything reaches the native addon.

import { XGuardError, describeValue } from './errors.js';

export type FlashAttention = 'auto' | 'on' | 'off';

export interface LoadOptions {
  /** KV cache size in tokens. Default: 4096, or the model's training context if smaller. */
  contextSize?: number;
  /** Tokens per llama_decode call while reading a prompt. Default: 512. */
  batchSize?: number;
  /** CPU threads for decoding. Default: all hardware threads. */
  threads?: number;
  /** Layers to offload to a GPU backend, when the addon was built with one. Default: 0. */
  gpuLayers?: number;
  /** Memory-map the model file instead of reading it. Default: true. */
  useMmap?: boolean;
  /** llama.cpp flash attention. Default: 'auto'. */
  flashAttention?: FlashAttention;
  /** Jinja chat template that replaces the model's own tokenizer.chat_template. */
  chatTemplate?: string;
  /** Called with the load progress, from 0 to 1. */
  onProgress?: (fraction: number) => void;
  /** Requests decoded together in one batch at most. Default: 8. */
  parallel?: number;
  /** Requests waiting for a place at most; more are rejected with ERR_QUEUE_FULL. Default: 1024. */
  maxQueue?: number;
  /** Finished prompts kept in the KV cache for reuse at most. Default: 32. */
  prefixCacheEntries?: number;
  /** KV cells the kept prompts may hold beyond what running requests share. Default: half of contextSize. */
  prefixCacheCells?: number;
}

export interface ClassifyOptions {
  /** Dynamic policy text: `- id: Name` entries, each followed by indented `- criterion` lines. */
  policy?: string;
  /** Ask for the explanation first and the label after it. Implies generation. */
  reasonFirst?: boolean;
  /** Generate the explanation after the label. */
  explain?: boolean;
  /** Maximum generated tokens when explaining. Default: 256, or 512 with reasonFirst. */
  maxNewTokens?: number;
  /** Number of top tokens read at the label position for tokenScores. Default: 10. */
  topK?: number;
  /** Aborts the request: a queued one is dropped, a running one stops at its next decode step. */
  signal?: AbortSignal;
  /** Rejects the request with ERR_TIMEOUT after this many milliseconds, queue time included. */
  timeoutMs?: number;
  /**
   * Rejects the request with ERR_INPUT_TOO_LONG before it is queued when its prompt (chat
   * template, policy and messages) has more tokens than this.
   */
  maxInputTokens?: number;
}

export const DEFAULT_TOP_K = 10;
export const DEFAULT_EXPLAIN_TOKENS = 256;
export const DEFAULT_REASON_FIRST_TOKENS = 512;
const MAX_TOP_K = 1000;
const MAX_NEW_TOKENS = 8192;

export function checkInteger(name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid ${name} ${describeValue(value)}: expected an integer from ${min} to ${max}.`);
  }
  return value;
}

function checkBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'boolean') {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid ${name} ${describeValue(value)}: expected true or false.`);
  }
  return value;
}

const LOAD_OPTION_NAMES = new Set([
  'contextSize', 'batchSize', 'threads', 'gpuLayers', 'useMmap', 'flashAttention', 'chatTemplate', 'onProgress',
  'parallel', 'maxQueue', 'prefixCacheEntries', 'prefixCacheCells',
]);
const CLASSIFY_OPTION_NAMES = new Set(['policy', 'reasonFirst', 'explain', 'maxNewTokens', 'topK', 'signal', 'timeoutMs', 'maxInputTokens']);
export const DEFAULT_MAX_QUEUE = 1024;

function checkKnownNames(kind: string, options: object, known: Set<string>): void {
  for (const name of Object.keys(options)) {
    if (!known.has(name)) {
      throw new XGuardError(
        'ERR_INVALID_OPTION',
        `Unknown ${kind} option ${describeValue(name)}. Accepted options: ${[...known].join(', ')}.`,
      );
    }
  }
}

function checkObject(kind: string, options: unknown): object {
  if (options === undefined) {
    return {};
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid ${kind} options ${describeValue(options)}: expected an object.`);
  }
  return options;
}

/** Validates load options and returns them with the flash attention mode as llama.cpp's number. */
export function checkLoadOptions(input: unknown): LoadOptions & { flashAttentionType: number } {
  const options = checkObject('load', input) as LoadOptions;
  checkKnownNames('load', options, LOAD_OPTION_NAMES);
  checkInteger('contextSize', options.contextSize, 64, 1 << 20);
  checkInteger('batchSize', options.batchSize, 1, 1 << 20);
  checkInteger('threads', options.threads, 1, 1024);
  checkInteger('gpuLayers', options.gpuLayers, -1, 100000);
  checkBoolean('useMmap', options.useMmap);
  checkInteger('parallel', options.parallel, 1, 64);
  checkInteger('maxQueue', options.maxQueue, 0, 1 << 30);
  checkInteger('prefixCacheEntries', options.prefixCacheEntries, 0, 128);
  checkInteger('prefixCacheCells', options.prefixCacheCells, 0, 1 << 20);
  if (options.chatTemplate !== undefined && (typeof options.chatTemplate !== 'string' || options.chatTemplate.trim() === '')) {
    throw new XGuardError(
      'ERR_INVALID_OPTION',
      `Invalid chatTemplate ${describeValue(options.chatTemplate)}: expected non-empty Jinja source.`,
    );
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid onProgress ${describeValue(options.onProgress)}: expected a function.`);
  }
  const modes: Record<FlashAttention, number> = { auto: -1, off: 0, on: 1 };
  const mode = options.flashAttention ?? 'auto';
  if (!Object.hasOwn(modes, mode)) {
    throw new XGuardError(
      'ERR_INVALID_OPTION',
      `Invalid flashAttention ${describeValue(mode)}: expected 'auto', 'on' or 'off'.`,
    );
  }
  return { ...options, flashAttentionType: modes[mode] };
}

export interface CheckedClassifyOptions {
  policy: string | undefined;
  reasonFirst: boolean;
  explain: boolean;
  maxNewTokens: number;
  topK: number;
  signal: AbortSignal | undefined;
  timeoutMs: number | undefined;
  maxInputTokens: number | undefined;
}

export function checkClassifyOptions(input: unknown): CheckedClassifyOptions {
  const options = checkObject('classify', input) as ClassifyOptions;
  checkKnownNames('classify', options, CLASSIFY_OPTION_NAMES);
  if (options.policy !== undefined && typeof options.policy !== 'string') {
    throw new XGuardError('ERR_INVALID_POLICY', `Invalid policy ${describeValue(options.policy)}: expected a string.`);
  }
  const reasonFirst = checkBoolean('reasonFirst', options.reasonFirst) ?? false;
  const explain = checkBoolean('explain', options.explain) ?? false;
  const maxNewTokens = checkInteger('maxNewTokens', options.maxNewTokens, 1, MAX_NEW_TOKENS);
  const topK = checkInteger('topK', options.topK, 1, MAX_TOP_K) ?? DEFAULT_TOP_K;
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid signal ${describeValue(signal)}: expected an AbortSignal.`);
  }
  const timeoutMs = checkInteger('timeoutMs', options.timeoutMs, 1, 2 ** 31 - 1);
  const maxInputTokens = checkInteger('maxInputTokens', options.maxInputTokens, 1, 1 << 20);
  const defaultTokens = reasonFirst ? DEFAULT_REASON_FIRST_TOKENS : DEFAULT_EXPLAIN_TOKENS;
  return {
    policy: options.policy,
    reasonFirst,
    explain,
    maxNewTokens: maxNewTokens ?? defaultTokens,
    topK,
    signal,
    timeoutMs,
    maxInputTokens,
  };
}
