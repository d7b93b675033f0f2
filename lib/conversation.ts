// Validation of the conversation that the guard model judges: one user request, or one
// user request followed by the assistant's response to it.

import { XGuardError, describeValue } from './errors.js';

export type ChatRole = 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

const ACCEPTED_ROLES: readonly ChatRole[] = ['user', 'assistant'];
const ACCEPTED_SHAPE = `a string, or an array of one or two { role, content } messages with role ${ACCEPTED_ROLES.map((role) => `"${role}"`).join(' or ')}`;

function invalidInput(message: string): XGuardError {
  return new XGuardError('ERR_INVALID_INPUT', message);
}

function validateContent(content: unknown, where: string): string {
  if (typeof content !== 'string') {
    throw invalidInput(`Invalid ${where}: expected a string, got ${describeValue(content)}.`);
  }
  if (content.trim() === '') {
    throw invalidInput(
      `Invalid ${where} ${describeValue(content)}: it is empty or only whitespace. Pass the text to check.`,
    );
  }
  if (content.includes('\0')) {
    throw invalidInput(`Invalid ${where} ${describeValue(content)}: it contains a NUL character (U+0000). Remove it.`);
  }
  return content;
}

function isChatRole(role: unknown): role is ChatRole {
  return ACCEPTED_ROLES.includes(role as ChatRole);
}

function normalizeMessage(entry: unknown, index: number): ChatMessage {
  const where = `input[${index}]`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw invalidInput(`Invalid ${where} ${describeValue(entry)}: expected a { role, content } object.`);
  }

  const { role, content } = entry as { role?: unknown; content?: unknown };
  if (!isChatRole(role)) {
    throw invalidInput(
      `Invalid ${where}.role ${describeValue(role)}: accepted roles are ${ACCEPTED_ROLES.map((name) => `"${name}"`).join(' and ')}.`,
    );
  }
  return { role, content: validateContent(content, `${where}.content`) };
}

/**
 * Validates the conversation to judge and returns it as a fresh list of messages.
 *
 * A string becomes one user message. An array must hold a user message, optionally
 * followed by the assistant's reply, each `{ role, content }` with non-blank string
 * content and no NUL character. Other properties of a message are ignored, and content
 * is returned unchanged (the chat template decides about trimming). Throws ERR_INVALID_INPUT
 * naming the offending value.
 */
export function normalizeInput(input: unknown): ChatMessage[] {
  if (typeof input === 'string') {
    return [{ role: 'user', content: validateContent(input, 'input') }];
  }
  if (!Array.isArray(input)) {
    const hint =
      typeof input === 'object' && input !== null && 'content' in input
        ? ' Wrap a single message in an array.'
        : '';
    throw invalidInput(`Invalid input ${describeValue(input)}: expected ${ACCEPTED_SHAPE}.${hint}`);
  }
  if (input.length === 0) {
    throw invalidInput(`Invalid input []: the message list is empty. Expected ${ACCEPTED_SHAPE}.`);
  }
  if (input.length > 2) {
    throw invalidInput(
      `Invalid input: got ${input.length} messages, but the model judges one user request or one request plus its response. Pass only the last user message and the assistant reply to it.`,
    );
  }

  const messages = input.map((entry: unknown, index) => normalizeMessage(entry, index));

  const first = messages[0];
  if (first !== undefined && first.role !== 'user') {
    throw invalidInput(
      `Invalid input[0].role ${describeValue(first.role)}: the conversation must start with a "user" message, optionally followed by one "assistant" message.`,
    );
  }
  const second = messages[1];
  if (second !== undefined && second.role !== 'assistant') {
    throw invalidInput(
      `Invalid input[1].role ${describeValue(second.role)}: the message after the user request must be the "assistant" reply.`,
    );
  }
  return messages;
}
