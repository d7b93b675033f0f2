#!/usr/bin/env node
// The `xguard` command.

import { readFileSync } from 'node:fs';
import path from 'node:path';

import { XGuardError } from '../errors.js';
import { PACKAGE_ROOT } from '../native.js';
import { CLASSIFY_USAGE, runClassify } from './classify.js';
import { INFO_USAGE, runInfo } from './info.js';
import { SERVE_USAGE, runServe } from './serve.js';

const USAGE = `usage: xguard <command> [options]

commands:
  classify [text]   judge a request (or a request and a response) and print its risk
  serve             run the HTTP moderation server
  info              print the CPU backend variant in use, its features, and the backends
  version           print the package version

Run \`xguard <command> --help\` for the options of classify, serve and info.`;

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'classify':
      return runClassify(rest);
    case 'serve':
      return runServe(rest);
    case 'info':
      return runInfo(rest, packageVersion());
    case 'version':
    case '--version':
      console.log(packageVersion());
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`xguard: unknown command ${JSON.stringify(command)}.\n\n${USAGE}`);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof XGuardError) {
    console.error(`xguard: ${error.message} (${error.code})`);
  } else if (error instanceof Error && (error as Error & { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    const usages: Record<string, string> = { serve: SERVE_USAGE, info: INFO_USAGE };
    const usage = usages[process.argv[2] ?? ''] ?? CLASSIFY_USAGE;
    console.error(`xguard: ${error.message}\n\n${usage}`);
  } else {
    console.error(error);
  }
  process.exitCode = 1;
}
