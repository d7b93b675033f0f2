// classifyStream(): the native request's events turned into an async iterator of decisions
// and text pieces.

import type { NativeDistribution, NativeEvaluateResult, NativeStreamEvent } from './native.js';
import type { ClassifyDecision, ClassifyResult, ClassifyStreamEvent } from './types.js';
import type { PreparedRequest } from './xguard.js';

export interface StreamHooks {
  prepare(): Promise<PreparedRequest>;
  submit(prepared: PreparedRequest, onEvent: (event: NativeStreamEvent) => void): Promise<NativeEvaluateResult>;
  decide(distribution: NativeDistribution, prepared: PreparedRequest): ClassifyDecision;
  finish(result: NativeEvaluateResult, prepared: PreparedRequest): ClassifyResult;
  detokenize(tokens: Int32Array): string;
}

// A multi-byte character split across tokens decodes to U+FFFD until its last byte arrives.
const INCOMPLETE_CHARACTER = '\uFFFD';

export async function* streamClassification(hooks: StreamHooks): AsyncIterableIterator<ClassifyStreamEvent> {
  const prepared = await hooks.prepare();
  const { reasonFirst } = prepared.checked;

  // Ending the iteration early aborts the request through this controller, which also
  // follows the caller's signal.
  const controller = new AbortController();
  const callerSignal = prepared.checked.signal;
  const forwardAbort = (): void => controller.abort(callerSignal?.reason);
  if (callerSignal?.aborted) {
    forwardAbort();
  }
  callerSignal?.addEventListener('abort', forwardAbort, { once: true });
  prepared.checked = { ...prepared.checked, signal: controller.signal };

  const events: ClassifyStreamEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (event: ClassifyStreamEvent): void => {
    events.push(event);
    wake?.();
  };

  // The label token of a label-first response is reported as the decision, not as text.
  const textTokens: number[] = [];
  let skipLabelToken = !reasonFirst;
  let emitted = '';
  const emitText = (final: boolean): void => {
    const text = hooks.detokenize(Int32Array.from(textTokens));
    const complete = final || !text.endsWith(INCOMPLETE_CHARACTER);
    if (complete && text.length > emitted.length && text.startsWith(emitted)) {
      push({ type: 'text', text: text.slice(emitted.length) });
      emitted = text;
    }
  };

  const onEvent = (event: NativeStreamEvent): void => {
    if (event.type === 'first') {
      if (!reasonFirst) {
        push({ type: 'decision', ...hooks.decide(event.distribution, prepared) });
      }
      return;
    }
    if (skipLabelToken) {
      skipLabelToken = false;
      return;
    }
    textTokens.push(event.token);
    emitText(false);
  };

  let done = false;
  let failure: unknown;
  hooks
    .submit(prepared, onEvent)
    .then((native) => {
      const result = hooks.finish(native, prepared);
      emitText(true);
      if (reasonFirst) {
        const { label, category, score, riskScores, tokenScores } = result;
        push({ type: 'decision', label, category, score, riskScores, tokenScores });
      }
      push({ type: 'done', result });
    })
    .catch((error: unknown) => {
      failure = error;
    })
    .finally(() => {
      done = true;
      wake?.();
    });

  try {
    while (true) {
      const event = events.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (done) {
        break;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
    if (failure !== undefined) {
      throw failure;
    }
  } finally {
    callerSignal?.removeEventListener('abort', forwardAbort);
    if (!done) {
      controller.abort();
    }
  }
}
