// Validation of the JSON bodies of /v1/classify and /v1/moderations. Each error is a 400 that
// names the field and what to send instead.

import { normalizeInput } from '../conversation.js';
import { XGuardError, describeValue } from '../errors.js';
import { checkClassifyOptions, type ClassifyOptions } from '../options.js';
import type { ClassifyInput } from '../types.js';
import { HttpError } from './http-error.js';

export interface ClassifyRequestBody {
  input: ClassifyInput;
  options: Pick<ClassifyOptions, 'policy' | 'reasonFirst' | 'explain' | 'maxNewTokens' | 'topK'>;
  stream: boolean;
}

export interface ModerationRequestBody {
  /** Each text to judge, as a request on its own. */
  inputs: string[];
}

const CLASSIFY_OPTION_FIELDS = ['policy', 'reasonFirst', 'explain', 'maxNewTokens', 'topK'] as const;
const CLASSIFY_FIELDS = ['input', ...CLASSIFY_OPTION_FIELDS, 'stream'];
const MODERATION_FIELDS = ['input', 'model'];
const INPUT_SHAPE = 'a string, or [{"role": "user", "content": "..."}] optionally followed by {"role": "assistant", "content": "..."}';

/**
 * Most texts one moderation request may carry. Each becomes its own classification, so a
 * larger batch should be split by the client, where it can also spread over replicas.
 */
export const MAX_MODERATION_INPUTS = 32;

function badRequest(code: string, message: string, param: string | null): HttpError {
  return new HttpError(400, code, message, { param });
}

function readObject(body: unknown, fields: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('ERR_INVALID_BODY', `Invalid request body ${describeValue(body)}: expected a JSON object with an "input" field.`, null);
  }
  for (const name of Object.keys(body)) {
    if (!fields.includes(name)) {
      throw badRequest('ERR_UNKNOWN_FIELD', `Unknown field ${describeValue(name)}. Accepted fields: ${fields.join(', ')}.`, name);
    }
  }
  const record = body as Record<string, unknown>;
  if (record.input === undefined) {
    throw badRequest('ERR_MISSING_FIELD', `Missing field "input": send ${INPUT_SHAPE}.`, 'input');
  }
  return record;
}

/** Runs a library check and turns its XGuardError into a 400 for `param`. */
function checkField<T>(param: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof XGuardError) {
      throw new HttpError(400, error.code, error.message, { param, cause: error });
    }
    throw error;
  }
}

/** Validates the body of POST /v1/classify. */
export function readClassifyBody(body: unknown): ClassifyRequestBody {
  const record = readObject(body, CLASSIFY_FIELDS);
  checkField('input', () => normalizeInput(record.input));

  const options: ClassifyRequestBody['options'] = {};
  for (const name of CLASSIFY_OPTION_FIELDS) {
    if (record[name] !== undefined) {
      // One field at a time, so that the error names the field that failed.
      checkField(name, () => checkClassifyOptions({ [name]: record[name] }));
      Object.assign(options, { [name]: record[name] });
    }
  }

  const stream = record.stream ?? false;
  if (typeof stream !== 'boolean') {
    throw badRequest('ERR_INVALID_OPTION', `Invalid stream ${describeValue(stream)}: expected true or false.`, 'stream');
  }
  return { input: record.input as ClassifyInput, options, stream };
}

function readModerationText(item: unknown, param: string): string {
  let text = item;
  if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
    // OpenAI's multi-modal form: { "type": "text", "text": "..." }.
    const part = item as { type?: unknown; text?: unknown };
    if (part.type !== 'text') {
      throw badRequest(
        'ERR_INVALID_INPUT',
        `Invalid ${param}.type ${describeValue(part.type)}: only text parts are supported ({"type": "text", "text": "..."}).`,
        param,
      );
    }
    text = part.text;
  }
  checkField(param, () => normalizeInput(text));
  return text as string;
}

/** Validates the body of POST /v1/moderations. */
export function readModerationBody(body: unknown): ModerationRequestBody {
  const record = readObject(body, MODERATION_FIELDS);
  if (record.model !== undefined && typeof record.model !== 'string') {
    throw badRequest('ERR_INVALID_OPTION', `Invalid model ${describeValue(record.model)}: expected a string or no model field.`, 'model');
  }

  const input = record.input;
  if (!Array.isArray(input)) {
    if (typeof input !== 'string') {
      throw badRequest('ERR_INVALID_INPUT', `Invalid input ${describeValue(input)}: expected a string or an array of strings.`, 'input');
    }
    return { inputs: [readModerationText(input, 'input')] };
  }
  if (input.length === 0) {
    throw badRequest('ERR_INVALID_INPUT', 'Invalid input []: the array is empty. Send at least one text.', 'input');
  }
  if (input.length > MAX_MODERATION_INPUTS) {
    throw badRequest(
      'ERR_INVALID_INPUT',
      `Invalid input: ${input.length} texts in one request, more than ${MAX_MODERATION_INPUTS}. Split them over several requests.`,
      'input',
    );
  }
  return { inputs: input.map((item: unknown, index) => readModerationText(item, `input[${index}]`)) };
}
