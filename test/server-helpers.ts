// HTTP helpers for the server tests. Every request goes to a server the test started on
// 127.0.0.1.

import assert from 'node:assert/strict';

import type { ServerOptions } from '../lib/server/options.js';
import { startServer, type RunningServer } from '../lib/server/server.js';
import { tinyModelPath } from './helpers.js';

export interface HttpResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  json: any;
}

/** Starts a server on the tiny model, a free port of 127.0.0.1 and one thread, and waits until it is ready. */
export async function startTinyServer(options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const server = await startServer({
    modelPath: await tinyModelPath(),
    port: 0,
    logLevel: 'silent',
    ...options,
    load: { threads: 1, ...options.load },
  });
  await server.ready;
  return server;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Sends a request. A `body` that is not a string is sent as JSON. */
export async function send(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<HttpResponse> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal: init.signal });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: parseJson(text) };
}

/** Asserts the common error shape and returns its `error` object. */
export function assertError(response: HttpResponse, status: number, code: string, param?: string | null): { message: string; type: string; param: string | null; code: string } {
  assert.equal(response.status, status, response.text);
  assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
  const error = response.json?.error;
  assert.ok(error !== undefined, `no error object in ${response.text}`);
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(error.code, code);
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 10, `message too short: ${error.message}`);
  if (param !== undefined) {
    assert.equal(error.param, param);
  }
  return error;
}

export interface SseEvent {
  event: string;
  data: any;
}

/** Parses a complete text/event-stream body into its events. */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') {
      continue;
    }
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    events.push({ event, data: JSON.parse(data) });
  }
  return events;
}

/** Reads one sample from Prometheus text. `labels` must match the sample's labels exactly as written. */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((entry) => entry.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

/** Polls `condition` every 20 ms until it is true or `timeoutMs` passes, and returns whether it became true. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) {
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}
