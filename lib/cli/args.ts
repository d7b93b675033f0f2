// Parsing helpers shared by the CLI commands.

import { XGuardError } from '../errors.js';

/** Parses the value of `--name` as an integer; undefined when the option was not given. */
export function parseInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const number = Number(value);
  if (value.trim() === '' || !Number.isInteger(number)) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid --${name} ${JSON.stringify(value)}: expected an integer.`);
  }
  return number;
}
