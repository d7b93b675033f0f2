// GET /metrics in the Prometheus text format.

import type { FastifyInstance } from 'fastify';

import type { RouteContext } from './context.js';

export function registerMetricsRoute(app: FastifyInstance, context: RouteContext): void {
  app.get('/metrics', async (_request, reply) => {
    const text = await context.metrics.registry.metrics();
    return reply.header('content-type', context.metrics.registry.contentType).send(text);
  });
}
