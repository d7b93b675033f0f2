// Starting and stopping the server: listen first so that /health can report the load, load
// the model, and on close drain running requests within the grace period.

import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

import { XGuardError } from '../errors.js';
import { XGuard } from '../xguard.js';
import { buildApp } from './app.js';
import { resolveServerOptions, type ResolvedServerOptions, type ServerOptions } from './options.js';
import { ServerState } from './state.js';

export interface RunningServer {
  /** Base URL, such as http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  readonly state: ServerState;
  readonly options: ResolvedServerOptions;
  /** Resolves once the model is loaded; rejects with the load error, after which the server is closed. */
  readonly ready: Promise<XGuard>;
  /**
   * Stops accepting requests, waits up to graceMs for running ones, cancels what is left,
   * and closes the model. Calling it again returns the same promise.
   */
  close(): Promise<void>;
  /** Resolves when the server has stopped, after close() or a failed load. */
  readonly closed: Promise<void>;
}

// How often a draining server checks whether its running requests have finished.
const DRAIN_POLL_MS = 50;
// After the grace period, cancelled requests get this long to send their 503 before every
// connection is cut.
const CANCEL_FLUSH_MS = 1000;

/** Resolves true once `condition` is true, or false after `timeoutMs`. */
async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() >= deadline) {
      return false;
    }
    await delay(DRAIN_POLL_MS);
  }
  return true;
}

/** Validates the options, listens, and starts loading the model. */
export async function startServer(input: ServerOptions): Promise<RunningServer> {
  const options = resolveServerOptions(input);
  const state = new ServerState(options.modelPath);
  const { app } = buildApp(state, options);
  const log = app.log;

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      const reason = { EADDRINUSE: 'is already in use', EACCES: 'needs privileges this process lacks', EADDRNOTAVAIL: 'is not an address of this machine' }[code];
      throw new XGuardError(
        'ERR_INVALID_OPTION',
        `cannot listen on ${options.host}:${options.port}: the ${code === 'EADDRNOTAVAIL' ? 'host' : 'port'} ${reason} (${code}). Choose another with --host or --port.`,
        { cause: error },
      );
    }
    throw error;
  }
  if (options.apiKey === null && !['127.0.0.1', '::1', 'localhost'].includes(options.host)) {
    log.warn({ host: options.host }, 'listening beyond loopback without an API key; set XGUARD_API_KEY or --api-key so that only your services can call it');
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info({ url, modelPath: options.modelPath }, 'listening; loading the model');

  let closing: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  const loadStarted = performance.now();
  const loading = XGuard.load(options.modelPath, options.load);
  const ready = loading.then(
    (guard) => {
      if (state.phase !== 'loading') {
        // close() was called during the load: it waits for this promise and closes the guard.
        return guard;
      }
      state.markReady(guard);
      const info = guard.info;
      log.info(
        {
          loadMs: Math.round(performance.now() - loadStarted),
          // The same name /health and every response carry; the GGUF's own name beside it.
          model: state.modelName,
          modelMetadataName: info.name,
          contextSize: info.contextSize,
          parallel: info.parallel,
          threads: info.threads,
        },
        'model loaded; accepting requests',
      );
      return guard;
    },
    async (error: unknown) => {
      log.error({ err: error }, 'the model failed to load; stopping');
      await close();
      throw error;
    },
  );
  // The caller may never await `ready`; its failure is logged above and ends the server.
  ready.catch(() => {});

  async function drain(): Promise<void> {
    state.markDraining();
    log.info({ graceMs: options.graceMs, requestsInFlight: state.requestsInFlight }, 'shutting down: no new connections; waiting for running requests');
    // Stops listening at once. The promise resolves when every connection has closed.
    const appClosed = app.close();

    const drained = await waitUntil(() => state.requestsInFlight === 0, options.graceMs);
    const guard = await loading.catch(() => undefined);
    if (!drained) {
      const pending = guard === undefined || guard.closed ? 0 : guard.stats().pending;
      log.warn({ pending, requestsInFlight: state.requestsInFlight }, 'grace period over: cancelling the running requests');
      await guard?.close();
      await waitUntil(() => state.requestsInFlight === 0, CANCEL_FLUSH_MS);
    }
    // Every request has completed. The connections left are kept-alive ones, idle or opened
    // without a request, which would otherwise keep the server open until they time out.
    app.server.closeAllConnections();
    await appClosed;

    await guard?.close();
    state.markStopped();
    log.info('stopped');
    markClosed();
  }

  function close(): Promise<void> {
    closing ??= drain();
    return closing;
  }

  return { url, port: address.port, state, options, ready, close, closed };
}
