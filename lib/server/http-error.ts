// One error shape for every failed request, in the envelope of OpenAI's API so that its
// clients can read it: { "error": { "message", "type", "param", "code" } }.

import { XGuardError, type XGuardErrorCode } from '../errors.js';

export interface ErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string;
  };
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, options: { param?: string | null; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: errorType(this.status), param: this.param, code: this.code } };
  }
}

/** OpenAI's error type names, by status. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable_error';
  if (status === 504) return 'timeout_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

// 499 is not a standard status: nginx logs it for a client that closed the connection
// before the response, and the client never sees it. Logs and metrics do.
const CLIENT_CLOSED_REQUEST = 499;

const LIBRARY_STATUS: Record<XGuardErrorCode, number> = {
  ERR_INVALID_INPUT: 400,
  ERR_INVALID_OPTION: 400,
  ERR_INVALID_POLICY: 400,
  ERR_INPUT_TOO_LONG: 413,
  ERR_CONTEXT_OVERFLOW: 413,
  ERR_QUEUE_FULL: 429,
  ERR_TIMEOUT: 504,
  ERR_ABORTED: CLIENT_CLOSED_REQUEST,
  ERR_CLOSED: 503,
  ERR_TEMPLATE: 500,
  ERR_TOKENIZE: 500,
  ERR_MODEL_LOAD: 500,
  ERR_NATIVE_ADDON: 500,
  ERR_CONTEXT_CREATE: 500,
  ERR_DECODE: 500,
};

const LIBRARY_PARAM: Partial<Record<XGuardErrorCode, string>> = {
  ERR_INVALID_INPUT: 'input',
  ERR_INVALID_POLICY: 'policy',
  ERR_INPUT_TOO_LONG: 'input',
  ERR_CONTEXT_OVERFLOW: 'input',
};

// Fastify's own errors that a client can cause, with the status and our code for each.
const FRAMEWORK_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  // Fastify's parser also rejects "__proto__" keys, which could pollute prototypes, with this
  // code and no way to tell the two cases apart.
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    code: 'ERR_INVALID_JSON',
    message: 'The request body is not valid JSON, or it has a "__proto__" key, which the server rejects. Send a plain JSON object.',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'ERR_INVALID_JSON',
    message: 'The request body is empty but content-type is application/json. Send a JSON object.',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'ERR_UNSUPPORTED_MEDIA_TYPE',
    message: 'Unsupported content-type. Send the body as JSON with content-type: application/json.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'ERR_INVALID_BODY',
    message: 'The content-length header does not match the body. Send the exact body length.',
  },
};

/** Maps any error thrown while serving a request to the HttpError sent in response. */
// Library options that a server operator sets as flags. The library's messages name the
// option; a server's caller and operator know the flag.
const OPTION_FLAGS: ReadonlyArray<[RegExp, string]> = [
  [/\bmaxQueue\b/g, '--max-queue'],
  [/\bmaxInputTokens\b/g, '--max-input-tokens'],
  [/\bcontextSize\b/g, '--context-size'],
  [/\btimeoutMs\b/g, '--timeout-ms'],
];

function withServerFlags(message: string): string {
  return OPTION_FLAGS.reduce((text, [option, flag]) => text.replace(option, flag), message);
}

export function toHttpError(error: unknown, retryAfterSeconds: () => number): HttpError {
  if (error instanceof HttpError) {
    return error;
  }
  if (error instanceof XGuardError) {
    const status = LIBRARY_STATUS[error.code] ?? 500;
    const headers: Record<string, string> = {};
    if (status === 429 || status === 503) {
      headers['retry-after'] = String(retryAfterSeconds());
    }
    return new HttpError(status, error.code, withServerFlags(error.message), { param: LIBRARY_PARAM[error.code] ?? null, headers, cause: error });
  }

  const framework = error as { code?: unknown; statusCode?: unknown; message?: unknown };
  if (framework.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(413, 'ERR_BODY_TOO_LARGE', 'The request body is larger than the server accepts. Send a smaller body or raise --body-limit.', {
      cause: error,
    });
  }
  const known = typeof framework.code === 'string' ? FRAMEWORK_ERRORS[framework.code] : undefined;
  if (known !== undefined) {
    return new HttpError(known.status, known.code, known.message, { cause: error });
  }
  // Other 4xx errors of the framework or of Node's parser: keep the status, not the message,
  // which may quote the body.
  if (typeof framework.statusCode === 'number' && framework.statusCode >= 400 && framework.statusCode < 500) {
    return new HttpError(framework.statusCode, 'ERR_BAD_REQUEST', 'The request could not be read. Check its headers and JSON body.', {
      cause: error,
    });
  }
  return new HttpError(500, 'ERR_INTERNAL', 'Internal server error. The server log has the details under the request id.', { cause: error });
}
