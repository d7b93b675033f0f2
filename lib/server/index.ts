// Entry point of xguard-node/server: the HTTP moderation server. It needs Node.js 20 or later
// (Fastify 5), while the library itself runs on Node.js 18.17.

export { startServer } from './server.js';
export type { RunningServer } from './server.js';
export {
  DEFAULT_BODY_LIMIT,
  DEFAULT_GRACE_MS,
  DEFAULT_PORT,
  DEFAULT_SERVER_MAX_QUEUE,
  DEFAULT_TIMEOUT_MS,
  resolveServerOptions,
} from './options.js';
export type { ResolvedServerOptions, ServerLogLevel, ServerOptions } from './options.js';
export type { ErrorBody } from './http-error.js';
export type { ModerationResponse, ModerationResult } from './moderation.js';
export { MAX_MODERATION_INPUTS } from './request-body.js';
export type { ServerPhase } from './state.js';
