// Per-request bookkeeping: the facts for the log line and the metrics, and the abort signal
// that cancels the work when the client goes away.

import type { FastifyReply, FastifyRequest } from 'fastify';

import type { ServerMetrics } from './metrics.js';
import type { ServerState } from './state.js';

export interface RequestRecord {
  started: number;
  /** Aborted when the client closes the connection before the response is complete. */
  readonly disconnect: AbortController;
  label: string | null;
  flagged: boolean | null;
  promptTokens: number;
  /** Texts judged in this request, logged only with logContent. */
  input: unknown;
  errorCode: string | null;
  /** Message of the error response. It may quote the input, so it is logged only with logContent. */
  errorMessage: string | null;
  /** Bytes of a streamed response, which has no content-length header. */
  streamedBytes: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    xguard: RequestRecord;
  }
}

export function newRequestRecord(): RequestRecord {
  return {
    started: performance.now(),
    disconnect: new AbortController(),
    label: null,
    flagged: null,
    promptTokens: 0,
    input: undefined,
    errorCode: null,
    errorMessage: null,
    streamedBytes: 0,
  };
}

// Status logged for a client that closed the connection before the response was complete.
const CLIENT_CLOSED_REQUEST = 499;

/**
 * Logs one line and updates the metrics when the response is complete or the connection is
 * gone. The response's 'close' event fires in both cases, unlike the framework's onResponse
 * hook, which a client that disconnects never reaches.
 */
export function trackResponse(request: FastifyRequest, reply: FastifyReply, state: ServerState, metrics: ServerMetrics, logContent: boolean): void {
  const record = request.xguard;
  state.requestStarted();
  reply.raw.once('close', () => {
    state.requestEnded();
    const complete = reply.raw.writableFinished;
    if (!complete) {
      record.disconnect.abort(new Error('The client closed the connection.'));
    }

    const status = complete ? reply.raw.statusCode : CLIENT_CLOSED_REQUEST;
    const seconds = (performance.now() - record.started) / 1000;
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requestFinished(route, request.method, status, seconds);

    const contentLength = Number(reply.getHeader('content-length') ?? record.streamedBytes);
    const line: Record<string, unknown> = {
      method: request.method,
      route,
      status,
      bytesIn: Number(request.headers['content-length'] ?? 0),
      bytesOut: contentLength,
      latencyMs: Math.round(seconds * 10_000) / 10,
      label: record.label,
      flagged: record.flagged,
      promptTokens: record.promptTokens,
      errorCode: record.errorCode,
    };
    if (logContent) {
      line.input = record.input;
      line.errorMessage = record.errorMessage;
    }
    if (status >= 500 && status !== 503 && status !== 504) {
      request.log.error(line, 'request failed');
    } else {
      request.log.info(line, 'request finished');
    }
  });
}

/** Records a finished classification in the request's record, the metrics and the rate estimate. */
export function recordClassification(
  request: FastifyRequest,
  metrics: ServerMetrics,
  state: ServerState,
  outcome: { turn: string; label: string | null; flagged: boolean | null; promptTokens: number },
): void {
  const record = request.xguard;
  // A moderation request judges several texts: the log shows the first flagged label, or the first label.
  const firstFlagged = outcome.flagged === true && record.flagged !== true;
  if (record.label === null || firstFlagged) {
    record.label = outcome.label;
  }
  if (outcome.flagged === true || record.flagged === null) {
    record.flagged = outcome.flagged;
  }
  record.promptTokens += outcome.promptTokens;
  metrics.classified(outcome.turn, outcome.label, outcome.flagged, outcome.promptTokens);
  state.recordCompletion();
}
