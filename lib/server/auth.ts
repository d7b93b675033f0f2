// Bearer API key check.

import { createHash, timingSafeEqual } from 'node:crypto';

import { HttpError } from './http-error.js';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Returns a check that throws a 401 unless the Authorization header carries `Bearer <apiKey>`.
 * Both sides are hashed first, so the comparison takes the same time whatever the length or
 * content of the sent key.
 */
export function bearerCheck(apiKey: string): (authorization: string | undefined) => void {
  const expected = digest(apiKey);
  return (authorization) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (match === null) {
      throw new HttpError(401, 'ERR_UNAUTHORIZED', 'Missing API key. Send the header "Authorization: Bearer <key>".', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    if (!timingSafeEqual(digest(match[1] as string), expected)) {
      throw new HttpError(401, 'ERR_UNAUTHORIZED', 'Invalid API key. Send the key the server was started with.', {
        headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
      });
    }
  };
}
