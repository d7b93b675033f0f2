// Loads the native addon and declares the shape of what it exports. Everything here mirrors
// native/*.cc; the rest of the library talks to llama.cpp only through these types.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { XGuardError } from './errors.js';
import type { SystemInfo } from './system-info.js';
import type { PrefixCacheStats } from './types.js';

export interface NativeModelMetadata {
  architecture: string;
  name: string;
  description: string;
  parameterCount: number;
  sizeBytes: number;
  trainContextLength: number;
  embeddingLength: number;
  layerCount: number;
  headCount: number;
  vocabularySize: number;
  chatTemplate: string | null;
  specialTokens: {
    bos: number | null;
    eos: number | null;
    eot: number | null;
    pad: number | null;
    addBos: boolean;
    addEos: boolean;
  };
}

export interface NativeAddedToken {
  id: number;
  text: string;
  control: boolean;
}

export interface NativeContextOptions {
  contextSize?: number;
  batchSize?: number;
  threads?: number;
  /** -1 auto, 0 off, 1 on, as llama.cpp's flash_attn_type. */
  flashAttention?: number;
  parallel?: number;
  prefixCacheEntries?: number;
  prefixCacheCells?: number;
}

export type NativeStreamEvent =
  | { type: 'first'; distribution: NativeDistribution }
  | { type: 'token'; token: number };

export interface NativeEvaluateRequest {
  tokens: Int32Array;
  topK?: number;
  tracked?: Int32Array;
  maxNewTokens?: number;
  allSteps?: boolean;
  stopTokens?: Int32Array;
  reference?: boolean;
  id?: number;
  /** Called on the JS thread with the first distribution and each generated token. */
  onEvent?: (event: NativeStreamEvent) => void;
}

export interface NativeDistribution {
  argmax: number;
  topTokens: Int32Array;
  topLogprobs: Float64Array;
  trackedLogprobs: Float64Array;
}

export interface NativeEvaluateResult {
  /** Index 0: after the last prompt token; index i: after generated token i (with allSteps). */
  steps: NativeDistribution[];
  generated: Int32Array;
  logits?: Float32Array;
  promptTokens: number;
  reusedTokens: number;
  decodedTokens: number;
  stopReason: 'none' | 'eog' | 'stop_token' | 'max_tokens' | 'context_full';
  queueMs: number;
  promptMs: number;
  generateMs: number;
  /** Maximum number of requests that shared one llama_decode call with this one. */
  batchPeak: number;
}


export interface NativeContextInfo {
  contextSize: number;
  batchSize: number;
  threads: number;
  parallel: number;
  queued: number;
  active: number;
  steps: number;
  decodedTokens: number;
  completed: number;
  disposed: boolean;
  prefixCache: PrefixCacheStats;
}

export interface NativeContext {
  evaluate(request: NativeEvaluateRequest): Promise<NativeEvaluateResult>;
  abort(id: number): boolean;
  info(): NativeContextInfo;
  dispose(): Promise<void>;
}

export interface NativeModel {
  metadata(): NativeModelMetadata;
  addedTokens(): NativeAddedToken[];
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  tokenizeBatch(texts: string[], parseSpecial: boolean): Promise<Int32Array[]>;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  tokenPiece(token: number): string;
  isEog(token: number): boolean;
  createContext(options: NativeContextOptions): Promise<NativeContext>;
  dispose(): void;
}

export type NativeSystemInfo = SystemInfo;

export interface NativeAddon {
  loadModel(
    modelPath: string,
    options: { gpuLayers?: number; useMmap?: boolean },
    onProgress?: (fraction: number) => void,
  ): Promise<NativeModel>;
  setLogger(callback: ((level: string, line: string) => void) | null, minLevel: number): void;
  systemInfo(): NativeSystemInfo;
  /** Bytes the C heap has allocated and not freed, over every arena; null outside glibc 2.33+. */
  heapInUse(): number | null;
}

/** The folder holding package.json, from lib/ (tsx) and from dist/ alike. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let addon: NativeAddon | undefined;

/** Loads the addon once: a local build (build/Release) first, then a matching prebuild. */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) {
    return addon;
  }
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (root: string) => NativeAddon;
    addon = nodeGypBuild(PACKAGE_ROOT);
  } catch (error) {
    // ERR_BACKEND comes from the addon itself. It loaded but found no CPU backend it can use,
    // and its message already names the fix.
    if ((error as { code?: unknown }).code === 'ERR_BACKEND') {
      throw new XGuardError('ERR_NATIVE_ADDON', (error as Error).message, { cause: error });
    }
    throw new XGuardError(
      'ERR_NATIVE_ADDON',
      `the xguard native addon could not be loaded from ${PACKAGE_ROOT} (${(error as Error).message}). ` +
        'Run `npm run build:native` to build it from source.',
      { cause: error },
    );
  }
  return addon;
}

/** Turns an error from the addon (an Error with a `code`) into an XGuardError. */
export function wrapNativeError(error: unknown): Error {
  if (error instanceof XGuardError) {
    return error;
  }
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_')) {
      return new XGuardError(code as XGuardError['code'], error.message, { cause: error });
    }
    return error;
  }
  return new Error(String(error));
}
