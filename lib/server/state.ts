// The server's phase and its guard: loading until the model is ready, draining after a
// shutdown signal.

import path from 'node:path';

import type { XGuard } from '../xguard.js';
import { HttpError } from './http-error.js';

export type ServerPhase = 'loading' | 'ready' | 'draining' | 'stopped';

// Completions over this window give the rate that Retry-After is estimated from.
const RATE_WINDOW_MS = 10_000;
const MAX_RETRY_AFTER_SECONDS = 60;

export class ServerState {
  #phase: ServerPhase = 'loading';
  #guard: XGuard | undefined;
  #requestsInFlight = 0;
  readonly #completions: number[] = [];
  /** Name reported in the `model` field of responses: the model file name without `.gguf`. */
  readonly modelName: string;

  constructor(modelPath: string) {
    this.modelName = path.basename(modelPath).replace(/\.gguf$/i, '');
  }

  get phase(): ServerPhase {
    return this.#phase;
  }

  /** The loaded guard, also while draining; undefined while loading. */
  get guard(): XGuard | undefined {
    return this.#guard;
  }

  /** HTTP requests received and neither completed nor abandoned by their client. */
  get requestsInFlight(): number {
    return this.#requestsInFlight;
  }

  requestStarted(): void {
    this.#requestsInFlight++;
  }

  requestEnded(): void {
    this.#requestsInFlight--;
  }

  markReady(guard: XGuard): void {
    this.#guard = guard;
    this.#phase = 'ready';
  }

  markDraining(): void {
    if (this.#phase !== 'stopped') {
      this.#phase = 'draining';
    }
  }

  markStopped(): void {
    this.#phase = 'stopped';
  }

  /** Returns the guard for a new request, or throws a 503 with Retry-After. */
  acceptRequest(): XGuard {
    if (this.#phase === 'ready' && this.#guard !== undefined) {
      return this.#guard;
    }
    const retry = { 'retry-after': String(this.retryAfterSeconds()) };
    if (this.#phase === 'loading') {
      return this.#reject('ERR_NOT_READY', 'The model is still loading. Retry after the Retry-After seconds; GET /health returns 200 once it is ready.', retry);
    }
    return this.#reject('ERR_SHUTTING_DOWN', 'The server is shutting down. Send the request to another replica.', retry);
  }

  #reject(code: string, message: string, headers: Record<string, string>): never {
    throw new HttpError(503, code, message, { headers });
  }

  recordCompletion(now = performance.now()): void {
    this.#completions.push(now);
    this.#forgetBefore(now - RATE_WINDOW_MS);
  }

  /**
   * Estimates how many seconds until the queue has room: the requests in progress divided by
   * the completion rate of the last 10 s, from 1 to 60.
   */
  retryAfterSeconds(now = performance.now()): number {
    this.#forgetBefore(now - RATE_WINDOW_MS);
    const pending = this.#guard?.closed === false ? this.#guard.stats().pending : 0;
    const perSecond = this.#completions.length / (RATE_WINDOW_MS / 1000);
    if (perSecond === 0) {
      return 1;
    }
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(pending / perSecond)));
  }

  #forgetBefore(cutoff: number): void {
    let stale = 0;
    while (stale < this.#completions.length && (this.#completions[stale] as number) < cutoff) {
      stale++;
    }
    if (stale > 0) {
      this.#completions.splice(0, stale);
    }
  }
}
