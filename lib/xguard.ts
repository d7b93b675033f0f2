// The public guard: loads an XGuard GGUF model, renders the prompt, and reads the risk label
// and its scores from the first generated position.

import { normalizeInput } from './conversation.js';
import { XGuardError, describeValue } from './errors.js';
import {
  loadAddon,
  wrapNativeError,
  type NativeContext,
  type NativeDistribution,
  type NativeEvaluateRequest,
  type NativeEvaluateResult,
  type NativeModel,
  type NativeStreamEvent,
} from './native.js';
import {
  DEFAULT_MAX_QUEUE,
  checkClassifyOptions,
  checkLoadOptions,
  type CheckedClassifyOptions,
  type ClassifyOptions,
  type LoadOptions,
} from './options.js';
import { parsePolicy } from './policy.js';
import { tokenizePrompt, type AddedToken, type TokenizerBackend } from './prompt-tokens.js';
import { RISK_CATEGORIES, buildLabelMap } from './risk-map.js';
import {
  findReasonFirstLabel,
  parseExplanation,
  riskScoresFrom,
  tokenScoresFrom,
  type LabelToken,
} from './scoring.js';
import { streamClassification } from './stream.js';
import { systemInfo, type SystemInfo } from './system-info.js';
import { ChatTemplate } from './template.js';
import type {
  ClassifyDecision,
  ClassifyInput,
  ClassifyResult,
  ClassifyStreamEvent,
  ClassifyUsage,
  FormattedPrompt,
  GuardStats,
  ModelInfo,
  PromptOptions,
} from './types.js';


/** The label tokens of a policy, resolved once per distinct policy text. */
interface PolicyLabels {
  labels: LabelToken[];
  tracked: Int32Array;
}

/** A request checked, rendered and tokenized, ready for the scheduler. */
export interface PreparedRequest {
  checked: CheckedClassifyOptions;
  labels: LabelToken[];
  tracked: Int32Array;
  prompt: FormattedPrompt;
  /** Whether tokens are generated past the label position. */
  generate: boolean;
  started: number;
}

const MAX_POLICY_CACHE = 64;

export class XGuard {
  readonly #model: NativeModel;
  readonly #context: NativeContext;
  readonly #template: ChatTemplate;
  readonly #info: ModelInfo;
  readonly #addedTokens: AddedToken[];
  readonly #backend: TokenizerBackend;
  readonly #pieceCache = new Map<number, string>();
  readonly #policyCache = new Map<string, PolicyLabels>();
  readonly #maxQueue: number;
  #nextRequestId = 1;
  #pending = 0;
  #submitTail: Promise<void> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(model: NativeModel, context: NativeContext, template: ChatTemplate, info: ModelInfo, maxQueue: number) {
    this.#maxQueue = maxQueue;
    this.#model = model;
    this.#context = context;
    this.#template = template;
    this.#info = info;
    this.#addedTokens = model.addedTokens().map(({ id, text }) => ({ id, text }));
    this.#backend = { tokenizeText: (texts) => this.#model.tokenizeBatch(texts, false) };
  }

  /** Describes the loaded native build: its CPU backend variant and features, and its backends. */
  static systemInfo(): SystemInfo {
    return systemInfo();
  }

  /**
   * Loads a GGUF model and creates its llama context. Rejects with ERR_MODEL_LOAD for a file
   * that is missing, not GGUF or not loadable, and ERR_TEMPLATE when the model has no chat
   * template and none is given.
   */
  static async load(modelPath: string, options: LoadOptions = {}): Promise<XGuard> {
    if (typeof modelPath !== 'string' || modelPath.trim() === '') {
      throw new XGuardError('ERR_INVALID_INPUT', `Invalid model path ${describeValue(modelPath)}: expected the path of a .gguf file.`);
    }
    const checked = checkLoadOptions(options);
    const addon = loadAddon();

    let model: NativeModel;
    try {
      const loadOptions: { gpuLayers?: number; useMmap?: boolean } = {};
      if (checked.gpuLayers !== undefined) loadOptions.gpuLayers = checked.gpuLayers;
      if (checked.useMmap !== undefined) loadOptions.useMmap = checked.useMmap;
      model = await addon.loadModel(modelPath, loadOptions, checked.onProgress);
    } catch (error) {
      throw wrapNativeError(error);
    }

    let context: NativeContext | undefined;
    try {
      const metadata = model.metadata();
      const templateSource = checked.chatTemplate ?? metadata.chatTemplate;
      if (templateSource === null || templateSource.trim() === '') {
        throw new XGuardError(
          'ERR_TEMPLATE',
          `Model file ${modelPath} has no tokenizer.chat_template. Pass the XGuard chat template as the chatTemplate load option.`,
        );
      }
      const template = new ChatTemplate(templateSource);

      const contextOptions: Record<string, number> = { flashAttention: checked.flashAttentionType };
      if (checked.contextSize !== undefined) contextOptions.contextSize = checked.contextSize;
      if (checked.batchSize !== undefined) contextOptions.batchSize = checked.batchSize;
      if (checked.threads !== undefined) contextOptions.threads = checked.threads;
      if (checked.parallel !== undefined) contextOptions.parallel = checked.parallel;
      if (checked.prefixCacheEntries !== undefined) contextOptions.prefixCacheEntries = checked.prefixCacheEntries;
      if (checked.prefixCacheCells !== undefined) contextOptions.prefixCacheCells = checked.prefixCacheCells;
      context = await model.createContext(contextOptions);

      const contextInfo = context.info();
      const info: ModelInfo = {
        path: modelPath,
        architecture: metadata.architecture,
        name: metadata.name,
        description: metadata.description,
        parameterCount: metadata.parameterCount,
        sizeBytes: metadata.sizeBytes,
        trainContextLength: metadata.trainContextLength,
        contextSize: contextInfo.contextSize,
        batchSize: contextInfo.batchSize,
        threads: contextInfo.threads,
        parallel: contextInfo.parallel,
        vocabularySize: metadata.vocabularySize,
        chatTemplateSource: checked.chatTemplate === undefined ? 'model' : 'option',
      };
      const guard = new XGuard(model, context, template, info, checked.maxQueue ?? DEFAULT_MAX_QUEUE);
      // Resolving the built-in label tokens now makes a model without them fail at load.
      guard.#labelsFor(undefined);
      return guard;
    } catch (error) {
      await context?.dispose();
      model.dispose();
      throw wrapNativeError(error);
    }
  }

  /** Facts about the loaded model and its context. */
  get info(): ModelInfo {
    return { ...this.#info };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Renders the prompt for `input` and tokenizes it exactly as classify() does. */
  async formatPrompt(input: ClassifyInput, options: PromptOptions = {}): Promise<FormattedPrompt> {
    this.#assertOpen();
    const checked = checkClassifyOptions(options);
    const messages = normalizeInput(input);
    const rendered = this.#template.render(messages, { policy: checked.policy, reasonFirst: checked.reasonFirst });
    const tokens = await tokenizePrompt(rendered, this.#addedTokens, this.#backend);
    return { text: rendered.text, tokens, literalSpans: rendered.literalSpans };
  }

  /**
   * Judges a request (a string, or one user message) or a request and its response (a user
   * then an assistant message). Without `explain` or `reasonFirst`, only the label position
   * is decoded.
   */
  async classify(input: ClassifyInput, options: ClassifyOptions = {}): Promise<ClassifyResult> {
    // Tokenization runs on the libuv thread pool and may finish out of order. The turn keeps
    // requests entering the native queue in the order of the calls.
    const turn = this.#reserveTurn();
    let prepared: PreparedRequest;
    let pending: Promise<NativeEvaluateResult>;
    try {
      prepared = await this.#prepare(input, options);
      await turn.ready;
      pending = this.#submit(prepared, undefined);
    } finally {
      turn.release();
    }
    return this.#buildResult(await pending, prepared);
  }

  /**
   * Classifies like classify() and reports progress as it happens: a `decision` event as soon
   * as the label position is decoded, `text` events with the generated text in pieces, and a
   * final `done` event with the whole result. With `reasonFirst` the label follows the
   * explanation, so the decision comes after the text. Ending the iteration early aborts the
   * request.
   */
  classifyStream(input: ClassifyInput, options: ClassifyOptions = {}): AsyncIterableIterator<ClassifyStreamEvent> {
    let turn: { ready: Promise<void>; release: () => void } | undefined;
    return streamClassification({
      prepare: async () => {
        turn = this.#reserveTurn();
        try {
          return await this.#prepare(input, options);
        } catch (error) {
          turn.release();
          throw error;
        }
      },
      submit: async (prepared, onEvent) => {
        let pending: Promise<NativeEvaluateResult>;
        try {
          await turn?.ready;
          pending = this.#submit(prepared, onEvent);
        } finally {
          turn?.release();
        }
        return pending;
      },
      decide: (distribution, prepared) => this.#decision(distribution, prepared.labels),
      finish: (result, prepared) => this.#buildResult(result, prepared),
      detokenize: (tokens) => this.#model.detokenize(tokens, false, false),
    });
  }

  /** Counters of the scheduler and the prefix cache. */
  stats(): GuardStats {
    const info = this.#context.info();
    return {
      pending: this.#pending,
      queued: info.queued,
      active: info.active,
      completed: info.completed,
      steps: info.steps,
      decodedTokens: info.decodedTokens,
      prefixCache: { ...info.prefixCache },
    };
  }

  /** Checks the input and options, renders and tokenizes the prompt. */
  async #prepare(input: ClassifyInput, options: ClassifyOptions): Promise<PreparedRequest> {
    const started = performance.now();
    this.#assertOpen();
    const checked = checkClassifyOptions(options);
    if (checked.signal?.aborted) {
      throw new XGuardError('ERR_ABORTED', 'The request was aborted before it started.', { cause: checked.signal.reason });
    }
    const { labels, tracked } = this.#labelsFor(checked.policy);
    const prompt = await this.formatPrompt(input, { policy: checked.policy, reasonFirst: checked.reasonFirst });
    if (checked.maxInputTokens !== undefined && prompt.tokens.length > checked.maxInputTokens) {
      throw new XGuardError(
        'ERR_INPUT_TOO_LONG',
        `The prompt has ${prompt.tokens.length} tokens, more than maxInputTokens ${checked.maxInputTokens} (the chat template and policy count too). Shorten the input or raise maxInputTokens.`,
      );
    }
    return { checked, labels, tracked, prompt, generate: checked.explain || checked.reasonFirst, started };
  }

  /** Queues the request in the native scheduler, with the queue limit, abort signal and timeout applied. */
  async #submit(prepared: PreparedRequest, onEvent: ((event: NativeStreamEvent) => void) | undefined): Promise<NativeEvaluateResult> {
    const { checked } = prepared;
    this.#assertOpen();
    if (checked.signal?.aborted) {
      throw new XGuardError('ERR_ABORTED', 'The request was aborted.', { cause: checked.signal.reason });
    }
    if (this.#pending >= this.#maxQueue + this.#info.parallel) {
      throw new XGuardError(
        'ERR_QUEUE_FULL',
        `The guard already has ${this.#pending} requests in progress (maxQueue ${this.#maxQueue} plus parallel ${this.#info.parallel}). Retry later or raise maxQueue.`,
      );
    }

    const id = this.#nextRequestId++;
    let timedOut = false;
    const onAbort = (): void => {
      this.#context.abort(id);
    };
    checked.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      checked.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            this.#context.abort(id);
          }, checked.timeoutMs);

    this.#pending++;
    try {
      const request: NativeEvaluateRequest = {
        id,
        tokens: prepared.prompt.tokens,
        topK: checked.topK,
        tracked: prepared.tracked,
        maxNewTokens: prepared.generate ? checked.maxNewTokens : 0,
        allSteps: checked.reasonFirst,
      };
      if (onEvent !== undefined) {
        request.onEvent = onEvent;
      }
      return await this.#context.evaluate(request);
    } catch (error) {
      const wrapped = wrapNativeError(error);
      if (timedOut && wrapped instanceof XGuardError && wrapped.code === 'ERR_ABORTED') {
        throw new XGuardError('ERR_TIMEOUT', `The request timed out after ${checked.timeoutMs} ms. Raise timeoutMs or reduce the load.`, {
          cause: error,
        });
      }
      throw wrapped;
    } finally {
      this.#pending--;
      clearTimeout(timer);
      checked.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Rejects queued requests with ERR_CLOSED, stops the running ones, and frees the context
   * and the model. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#closing = this.#context.dispose().finally(() => this.#model.dispose());
    }
    return this.#closing;
  }

  /**
   * Reserves the next place in submission order. `ready` resolves when every earlier request
   * has entered the native queue; `release` lets the next one in and may be called more than once.
   */
  #reserveTurn(): { ready: Promise<void>; release: () => void } {
    const ready = this.#submitTail;
    let release!: () => void;
    this.#submitTail = new Promise<void>((resolve) => {
      release = resolve;
    });
    return { ready, release };
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new XGuardError('ERR_CLOSED', 'This guard was closed. Load the model again with XGuard.load().');
    }
  }

  #tokenText(token: number): string {
    let text = this.#pieceCache.get(token);
    if (text === undefined) {
      text = this.#model.tokenPiece(token);
      this.#pieceCache.set(token, text);
    }
    return text;
  }

  /** Resolves the label ids of the built-in list plus the policy's added letters to tokens. */
  #labelsFor(policy: string | undefined): PolicyLabels {
    const key = policy ?? '';
    const cached = this.#policyCache.get(key);
    if (cached !== undefined) {
      return cached;
    }

    const categories = policy === undefined ? [] : parsePolicy(policy);
    const labelMap = buildLabelMap(categories);
    const labels: LabelToken[] = [];
    for (const [id, category] of labelMap) {
      const tokens = this.#model.tokenize(id, false, false);
      if (tokens.length !== 1) {
        const builtIn = RISK_CATEGORIES.some((entry) => entry.id === id);
        throw new XGuardError(
          builtIn ? 'ERR_MODEL_LOAD' : 'ERR_INVALID_POLICY',
          builtIn
            ? `Label id ${describeValue(id)} is ${tokens.length} tokens in this model's vocabulary, not one. Load a YuFeng-XGuard-Reason model (Qwen3 vocabulary).`
            : `Policy id ${describeValue(id)} is ${tokens.length} tokens in this model's vocabulary; use a single letter a-z.`,
        );
      }
      labels.push({ id, category, token: tokens[0] as number });
    }
    const entry = { labels, tracked: Int32Array.from(labels, (label) => label.token) };

    if (this.#policyCache.size >= MAX_POLICY_CACHE) {
      const oldest = this.#policyCache.keys().next().value;
      if (oldest !== undefined) this.#policyCache.delete(oldest);
    }
    this.#policyCache.set(key, entry);
    return entry;
  }

  /** The label and scores at one distribution. */
  #decision(distribution: NativeDistribution, labels: LabelToken[]): ClassifyDecision {
    const labelText = this.#tokenText(distribution.argmax).trim();
    const matched = labels.find((label) => label.token === distribution.argmax);
    return {
      label: labelText,
      category: matched?.category ?? null,
      score: Math.exp(distribution.topLogprobs[0] ?? Number.NEGATIVE_INFINITY),
      riskScores: riskScoresFrom(distribution, labels),
      tokenScores: tokenScoresFrom(distribution, (token) => this.#tokenText(token)),
    };
  }

  #buildResult(result: NativeEvaluateResult, prepared: PreparedRequest): ClassifyResult {
    const usage: ClassifyUsage = {
      promptTokens: result.promptTokens,
      reusedTokens: result.reusedTokens,
      decodedTokens: result.decodedTokens,
      generatedTokens: result.generated.length,
      queueMs: result.queueMs,
      promptMs: result.promptMs,
      generateMs: result.generateMs,
      totalMs: performance.now() - prepared.started,
      batchPeak: result.batchPeak,
    };
    const first = result.steps[0];
    if (first === undefined) {
      throw new XGuardError('ERR_DECODE', 'The native evaluation returned no distribution for the label position.');
    }

    // The label position: the first generated token, or after the explanation with reasonFirst.
    let labelStep = 0;
    if (prepared.checked.reasonFirst) {
      labelStep = findReasonFirstLabel(result.generated, (token) => this.#tokenText(token));
    }
    const distribution = labelStep >= 0 ? result.steps[labelStep] : undefined;

    const response = prepared.generate
      ? this.#model.detokenize(result.generated, false, false)
      : this.#tokenText(first.argmax);
    let stopReason: ClassifyResult['stopReason'] = 'label_only';
    if (prepared.generate) {
      // classify() passes no stop tokens, so only these reasons can occur.
      stopReason = result.stopReason === 'eog' || result.stopReason === 'context_full' ? result.stopReason : 'max_tokens';
    }

    const decision: ClassifyDecision =
      distribution === undefined
        ? { label: null, category: null, score: null, riskScores: [], tokenScores: [] }
        : this.#decision(distribution, prepared.labels);
    return { ...decision, response, explanation: parseExplanation(response), stopReason, usage };
  }
}
