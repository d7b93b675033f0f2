// Errors thrown by xguard-node. Each carries a stable `code` so callers can branch on the
// kind of failure without matching message text.

export type XGuardErrorCode =
  | 'ERR_INVALID_INPUT'
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_POLICY'
  | 'ERR_TEMPLATE'
  | 'ERR_TOKENIZE'
  | 'ERR_MODEL_LOAD'
  | 'ERR_NATIVE_ADDON'
  | 'ERR_CONTEXT_CREATE'
  | 'ERR_CONTEXT_OVERFLOW'
  | 'ERR_INPUT_TOO_LONG'
  | 'ERR_DECODE'
  | 'ERR_CLOSED'
  | 'ERR_QUEUE_FULL'
  | 'ERR_TIMEOUT'
  | 'ERR_ABORTED';

export class XGuardError extends Error {
  readonly code: XGuardErrorCode;

  constructor(code: XGuardErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'XGuardError';
    this.code = code;
  }
}

/** Quotes a caller-supplied value for an error message, cut to a readable length. */
export function describeValue(value: unknown, maxLength = 60): string {
  let text: string;
  if (typeof value === 'string') {
    text = JSON.stringify(value);
  } else if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
    text = String(value);
  } else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}
