// The server's state, options and metrics, shared by every route handler.

import type { FastifyRequest } from 'fastify';

import type { HttpError } from '../http-error.js';
import type { ServerMetrics } from '../metrics.js';
import type { ResolvedServerOptions } from '../options.js';
import type { ServerState } from '../state.js';

export interface RouteContext {
  state: ServerState;
  options: ResolvedServerOptions;
  metrics: ServerMetrics;
  /** Maps an error to the HttpError sent in response and stores its code in the request's record. */
  toHttpError(error: unknown, request: FastifyRequest): HttpError;
}
