// The Fastify application: request ids, API key, per-request tracking, one error shape, and
// the routes.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';

import { bearerCheck } from './auth.js';
import { HttpError, toHttpError } from './http-error.js';
import { ServerMetrics } from './metrics.js';
import type { ResolvedServerOptions } from './options.js';
import { newRequestRecord, trackResponse } from './request-record.js';
import { registerClassifyRoute } from './routes/classify.js';
import type { RouteContext } from './routes/context.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { registerModerationsRoute } from './routes/moderations.js';
import type { ServerState } from './state.js';

// A request id sent by the client (or a proxy) is kept when it looks like an id, so that a
// request can be followed across services. Anything else is replaced by a new id.
const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

// Time to receive a whole request, headers and body. Without it a client that sends slowly
// keeps a connection open for as long as it likes.
const RECEIVE_TIMEOUT_MS = 30_000;

const ROUTES = 'POST /v1/classify, POST /v1/moderations, GET /health, GET /health/live, GET /metrics';

function requestId(raw: IncomingMessage): string {
  const sent = raw.headers['x-request-id'];
  return typeof sent === 'string' && CLIENT_REQUEST_ID.test(sent) ? sent : randomUUID();
}

export interface ServerApp {
  app: FastifyInstance;
  metrics: ServerMetrics;
}

/** Builds the application; the caller listens and moves `state` through its phases. */
export function buildApp(state: ServerState, options: ResolvedServerOptions): ServerApp {
  const app = Fastify({
    logger: { level: options.logLevel },
    // The server writes its own line per request, without the URL's query or the headers.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    genReqId: requestId,
    requestTimeout: RECEIVE_TIMEOUT_MS,
    // While draining, the routes send the 503 themselves, in the server's own error shape.
    return503OnClosing: false,
  });
  // Bodies are JSON only; other content types get 415 instead of reaching the routes as text.
  app.removeContentTypeParser('text/plain');
  const metrics = new ServerMetrics(state);
  const checkKey = options.apiKey === null ? null : bearerCheck(options.apiKey);

  const context: RouteContext = {
    state,
    options,
    metrics,
    toHttpError(error: unknown, request: FastifyRequest): HttpError {
      // Errors raised before the onRequest hook (an unparsable URL) have no record yet.
      request.xguard ??= newRequestRecord();
      let httpError = toHttpError(error, () => state.retryAfterSeconds());
      if (httpError.status === 500) {
        request.log.error({ err: error }, 'request failed with an unexpected error');
        httpError = new HttpError(500, httpError.code, `${httpError.message} Request id: ${request.id}.`, { cause: error });
      }
      request.xguard.errorCode = httpError.code;
      request.xguard.errorMessage = httpError.message;
      return httpError;
    },
  };

  app.decorateRequest('xguard', null as never);
  app.addHook('onRequest', async (request, reply) => {
    request.xguard = newRequestRecord();
    trackResponse(request, reply, state, metrics, options.logContent);
    reply.header('x-request-id', request.id);
    if (checkKey !== null && !request.url.startsWith('/health')) {
      checkKey(request.headers.authorization);
    }
  });

  app.addHook('onSend', async (_request, reply) => {
    if (state.phase !== 'ready') {
      // Closes kept-alive connections after this response, so that clients move to another
      // replica and a draining server can finish.
      reply.header('connection', 'close');
    }
  });

  app.setErrorHandler(async (error, request, reply) => {
    const httpError = context.toHttpError(error, request);
    return reply.code(httpError.status).headers(httpError.headers).send(httpError.toBody());
  });
  app.setNotFoundHandler(async (request) => {
    throw new HttpError(404, 'ERR_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}. Routes: ${ROUTES}.`);
  });

  registerClassifyRoute(app, context);
  registerModerationsRoute(app, context);
  registerHealthRoutes(app, context);
  registerMetricsRoute(app, context);
  return { app, metrics };
}
