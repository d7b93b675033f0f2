// POST /v1/classify: the library's ClassifyResult plus the thresholds' decision, as one JSON
// object or, with "stream": true, as server-sent events.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { decide, judgedTurnOf, type Decision, type JudgedTurn } from '../../decide.js';
import type { ClassifyOptions } from '../../options.js';
import type { ClassifyDecision, ClassifyResult, ClassifyStreamEvent } from '../../types.js';
import type { XGuard } from '../../xguard.js';
import { readClassifyBody, type ClassifyRequestBody } from '../request-body.js';
import { recordClassification } from '../request-record.js';
import { sseFrame, sseStream } from '../sse.js';
import type { RouteContext } from './context.js';

/** Returns the decision for a result, or null when the result has no label scores to decide on. */
function decisionFor(result: ClassifyDecision, context: RouteContext, turn: JudgedTurn): Decision | null {
  return result.riskScores.length === 0 ? null : decide(result, context.options.thresholds, turn);
}

function requestOptions(request: FastifyRequest, body: ClassifyRequestBody, context: RouteContext): ClassifyOptions {
  const options: ClassifyOptions = { ...body.options, signal: request.xguard.disconnect.signal, timeoutMs: context.options.timeoutMs };
  if (context.options.maxInputTokens !== undefined) {
    options.maxInputTokens = context.options.maxInputTokens;
  }
  return options;
}

function record(request: FastifyRequest, context: RouteContext, turn: JudgedTurn, result: ClassifyResult, decision: Decision | null): void {
  recordClassification(request, context.metrics, context.state, {
    turn,
    label: result.label,
    flagged: decision?.flagged ?? null,
    promptTokens: result.usage.promptTokens,
  });
}

async function streamResponse(
  request: FastifyRequest,
  reply: FastifyReply,
  context: RouteContext,
  guard: XGuard,
  body: ClassifyRequestBody,
  turn: JudgedTurn,
): Promise<FastifyReply> {
  const events = guard.classifyStream(body.input, requestOptions(request, body, context));
  // Errors before the first event (invalid policy, full queue, timeout) still get a plain
  // HTTP status. Once the first event is out, the status is 200, so errors become frames.
  const first = await events.next();
  if (first.done === true) {
    throw new Error('classifyStream() ended without an event.');
  }

  const frame = (event: ClassifyStreamEvent): string => {
    if (event.type === 'text') {
      return sseFrame('text', { text: event.text });
    }
    if (event.type === 'decision') {
      const { type: _type, ...decisionFields } = event;
      return sseFrame('decision', { ...decisionFields, decision: decisionFor(event, context, turn) });
    }
    const decision = decisionFor(event.result, context, turn);
    record(request, context, turn, event.result, decision);
    return sseFrame('done', { id: request.id, model: context.state.modelName, ...event.result, decision });
  };

  const stream = sseStream(first.value, events, {
    frame,
    errorFrame: (error) => {
      const httpError = context.toHttpError(error, request);
      return httpError.toBody();
    },
    sent: (bytes) => {
      request.xguard.streamedBytes += bytes;
    },
  });
  return reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no')
    .send(stream);
}

export function registerClassifyRoute(app: FastifyInstance, context: RouteContext): void {
  app.post('/v1/classify', async (request, reply) => {
    const guard = context.state.acceptRequest();
    const body = readClassifyBody(request.body);
    request.xguard.input = body.input;
    const turn = judgedTurnOf(body.input);

    if (body.stream) {
      return streamResponse(request, reply, context, guard, body, turn);
    }
    const result = await guard.classify(body.input, requestOptions(request, body, context));
    const decision = decisionFor(result, context, turn);
    record(request, context, turn, result, decision);
    return { id: request.id, model: context.state.modelName, ...result, decision };
  });
}
