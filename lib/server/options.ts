// Options of the HTTP server, their defaults and their validation.

import { DEFAULT_THRESHOLDS, checkThresholds, type Thresholds } from '../decide.js';
import { XGuardError, describeValue } from '../errors.js';
import { checkInteger, checkLoadOptions, type LoadOptions } from '../options.js';

export type ServerLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
const LOG_LEVELS: readonly ServerLogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'];

export interface ServerOptions {
  /** XGuard GGUF model to load. */
  modelPath: string;
  /** Address to bind. Default: 127.0.0.1, so that only this machine can connect. */
  host?: string;
  /** TCP port; 0 picks a free one. Default: 8080. */
  port?: number;
  /** Bearer token that every request except /health must send; null or unset for none. */
  apiKey?: string | null;
  /** Flagging thresholds. Default: DEFAULT_THRESHOLDS (0.5 for requests, 0.8 for responses). */
  thresholds?: Thresholds;
  /** Maximum request body in bytes; larger bodies get 413. Default: 1 MiB. */
  bodyLimit?: number;
  /** Maximum prompt tokens of one input (chat template included); longer inputs get 413. Default: the context size. */
  maxInputTokens?: number;
  /** Time limit of one request in ms, waiting included; later it gets 504. Default: 30000. */
  timeoutMs?: number;
  /** Time in ms that a shutdown waits for running requests before it cancels them. Default: 25000. */
  graceMs?: number;
  /** Write request content into the log. Default: false. */
  logContent?: boolean;
  /** Log level of the JSON log on standard output. Default: 'info'. */
  logLevel?: ServerLogLevel;
  /** Options of XGuard.load(). `maxQueue` defaults to 256 here. */
  load?: LoadOptions;
}

export type ResolvedServerOptions = Required<Omit<ServerOptions, 'maxInputTokens' | 'apiKey'>> & {
  apiKey: string | null;
  maxInputTokens: number | undefined;
};

export const DEFAULT_PORT = 8080;
export const DEFAULT_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
// Kubernetes sends SIGKILL 30 s after SIGTERM by default; 25 s leaves time to close the model.
export const DEFAULT_GRACE_MS = 25_000;
// NOTE: a guess, not a measurement. A request that waits longer than timeoutMs fails with
// 504 anyway, so a useful queue is about (requests per second) x (timeoutMs / 1000) long.
export const DEFAULT_SERVER_MAX_QUEUE = 256;

const SERVER_OPTION_NAMES = [
  'modelPath', 'host', 'port', 'apiKey', 'thresholds', 'bodyLimit', 'maxInputTokens', 'timeoutMs', 'graceMs', 'logContent',
  'logLevel', 'load',
];

function invalid(message: string): XGuardError {
  return new XGuardError('ERR_INVALID_OPTION', message);
}

/** Validates server options and fills in the defaults. Throws ERR_INVALID_OPTION naming the option. */
export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalid(`Invalid server options ${describeValue(options)}: expected an object.`);
  }
  for (const name of Object.keys(options)) {
    if (!SERVER_OPTION_NAMES.includes(name)) {
      throw invalid(`Unknown server option ${describeValue(name)}. Accepted options: ${SERVER_OPTION_NAMES.join(', ')}.`);
    }
  }
  if (typeof options.modelPath !== 'string' || options.modelPath.trim() === '') {
    throw invalid(`Invalid modelPath ${describeValue(options.modelPath)}: expected the path of a .gguf file.`);
  }
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.trim() === '') {
    throw invalid(`Invalid host ${describeValue(host)}: expected an IP address or host name to bind, such as 127.0.0.1.`);
  }
  const apiKey = options.apiKey ?? null;
  if (apiKey !== null && (typeof apiKey !== 'string' || apiKey.length < 8 || /\s/.test(apiKey))) {
    // A short key can be guessed; whitespace cannot travel in an Authorization header.
    throw invalid('Invalid apiKey: expected at least 8 characters without whitespace.');
  }
  const logLevel = options.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw invalid(`Invalid logLevel ${describeValue(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}.`);
  }
  if (options.logContent !== undefined && typeof options.logContent !== 'boolean') {
    throw invalid(`Invalid logContent ${describeValue(options.logContent)}: expected true or false.`);
  }

  const load: LoadOptions = { maxQueue: DEFAULT_SERVER_MAX_QUEUE, ...options.load };
  checkLoadOptions(load);

  return {
    modelPath: options.modelPath,
    host,
    port: checkInteger('port', options.port, 0, 65535) ?? DEFAULT_PORT,
    apiKey,
    thresholds: options.thresholds === undefined ? DEFAULT_THRESHOLDS : checkThresholds(options.thresholds),
    bodyLimit: checkInteger('bodyLimit', options.bodyLimit, 1, 1 << 30) ?? DEFAULT_BODY_LIMIT,
    maxInputTokens: checkInteger('maxInputTokens', options.maxInputTokens, 1, 1 << 20),
    timeoutMs: checkInteger('timeoutMs', options.timeoutMs, 1, 2 ** 31 - 1) ?? DEFAULT_TIMEOUT_MS,
    graceMs: checkInteger('graceMs', options.graceMs, 0, 2 ** 31 - 1) ?? DEFAULT_GRACE_MS,
    logContent: options.logContent ?? false,
    logLevel,
    load,
  };
}
