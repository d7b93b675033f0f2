// GET /health (readiness: 200 only while the model is loaded and requests are accepted) and
// GET /health/live (liveness: 200 whenever the process serves HTTP, loading included).

import type { FastifyInstance } from 'fastify';

import type { RouteContext } from './context.js';

export function registerHealthRoutes(app: FastifyInstance, context: RouteContext): void {
  app.get('/health', async () => {
    // Throws the 503 with Retry-After while loading or draining.
    context.state.acceptRequest();
    return { status: 'ready', model: context.state.modelName };
  });

  app.get('/health/live', async () => ({ status: 'alive', phase: context.state.phase }));
}
