// Server-sent events for POST /v1/classify with "stream": true.

import { Readable } from 'node:stream';

import type { ClassifyStreamEvent } from '../types.js';
import type { ErrorBody } from './http-error.js';

/** Formats one SSE frame. JSON.stringify escapes line breaks, so `data` stays on one line. */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export interface SseHooks {
  /** The frame for one event of classifyStream(). */
  frame(event: ClassifyStreamEvent): string;
  /** The error frame for a failure after the response has started. */
  errorFrame(error: unknown): ErrorBody;
  /** Called with the size of each frame sent. */
  sent(bytes: number): void;
}

/**
 * Returns a readable stream of SSE frames: `first`, which the caller has already read to
 * learn that the request was accepted, then the rest of `events`. A failure later becomes an
 * `error` frame. When the client disconnects, the framework destroys the stream, which ends
 * the generator and so leaves the event loop of classifyStream(), aborting the request.
 */
export function sseStream(first: ClassifyStreamEvent, events: AsyncIterator<ClassifyStreamEvent>, hooks: SseHooks): Readable {
  async function* frames(): AsyncGenerator<string> {
    try {
      let next: IteratorResult<ClassifyStreamEvent> = { done: false, value: first };
      while (next.done !== true) {
        const text = hooks.frame(next.value);
        hooks.sent(Buffer.byteLength(text));
        yield text;
        next = await events.next();
      }
    } catch (error) {
      const text = sseFrame('error', hooks.errorFrame(error));
      hooks.sent(Buffer.byteLength(text));
      yield text;
    } finally {
      await events.return?.();
    }
  }
  return Readable.from(frames(), { objectMode: false });
}
