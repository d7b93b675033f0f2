// llama.cpp's log output, routed to a caller's function. Silent until setLogger() is called.

import { XGuardError, describeValue } from './errors.js';
import { loadAddon } from './native.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string) => void;

// ggml_log_level values.
const LEVELS: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4 };

/**
 * Sends llama.cpp's log lines at `minLevel` and above to `logger`, or silences them with null.
 * The hook is process-wide: llama.cpp has one log callback.
 */
export function setLogger(logger: Logger | null, minLevel: LogLevel = 'warn'): void {
  if (logger !== null && typeof logger !== 'function') {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid logger ${describeValue(logger)}: expected a function or null.`);
  }
  if (!Object.hasOwn(LEVELS, minLevel)) {
    throw new XGuardError(
      'ERR_INVALID_OPTION',
      `Invalid log level ${describeValue(minLevel)}: expected 'debug', 'info', 'warn' or 'error'.`,
    );
  }
  const addon = loadAddon();
  addon.setLogger(logger === null ? null : (level, line) => logger(level as LogLevel, line), LEVELS[minLevel]);
}
