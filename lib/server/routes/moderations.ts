// POST /v1/moderations in the shape of OpenAI's moderation API. Each text is judged as a
// request on its own, with the request thresholds.

import { randomUUID } from 'node:crypto';

import type { FastifyInstance } from 'fastify';

import { decide } from '../../decide.js';
import type { ClassifyOptions } from '../../options.js';
import type { ClassifyResult } from '../../types.js';
import { HttpError } from '../http-error.js';
import { DEFAULT_SERVER_MAX_QUEUE } from '../options.js';
import { toModerationResult, type ModerationResponse } from '../moderation.js';
import { readModerationBody } from '../request-body.js';
import { recordClassification } from '../request-record.js';
import type { RouteContext } from './context.js';

export function registerModerationsRoute(app: FastifyInstance, context: RouteContext): void {
  app.post('/v1/moderations', async (request): Promise<ModerationResponse> => {
    const guard = context.state.acceptRequest();
    const { inputs } = readModerationBody(request.body);
    request.xguard.input = inputs;

    // All texts are queued at once, so more of them than the engine can hold would get 429
    // on every retry. That is a request this server can never accept.
    const capacity = guard.info.parallel + (context.options.load.maxQueue ?? DEFAULT_SERVER_MAX_QUEUE);
    if (inputs.length > capacity) {
      throw new HttpError(
        400,
        'ERR_INVALID_INPUT',
        `Invalid input: ${inputs.length} texts in one request, more than this server can queue at once (${capacity}: --parallel plus --max-queue). Send fewer texts per request.`,
        { param: 'input' },
      );
    }

    // The first failure cancels the other texts of the request, as does a disconnect.
    const batch = new AbortController();
    const onDisconnect = (): void => batch.abort();
    request.xguard.disconnect.signal.addEventListener('abort', onDisconnect, { once: true });
    const options: ClassifyOptions = { signal: batch.signal, timeoutMs: context.options.timeoutMs };
    if (context.options.maxInputTokens !== undefined) {
      options.maxInputTokens = context.options.maxInputTokens;
    }

    let results: ClassifyResult[];
    try {
      results = await Promise.all(inputs.map((text) => guard.classify(text, options)));
    } catch (error) {
      batch.abort();
      throw error;
    } finally {
      request.xguard.disconnect.signal.removeEventListener('abort', onDisconnect);
    }

    const moderations = results.map((result) => {
      const decision = decide(result, context.options.thresholds, 'request');
      recordClassification(request, context.metrics, context.state, {
        turn: 'request',
        label: result.label,
        flagged: decision.flagged,
        promptTokens: result.usage.promptTokens,
      });
      return toModerationResult(result, decision);
    });
    return { id: `modr-${randomUUID()}`, model: context.state.modelName, results: moderations };
  });
}
