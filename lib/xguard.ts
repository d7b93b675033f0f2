// The public guard: loads an XGuard GGUF model, renders the prompt, and reads the risk label
// and its scores from the first generated position.

import { normalizeInput, type ChatMessage } from './conversation.js';
import { XGuardError, describeValue } from './errors.js';
import {
  loadAddon,
  wrapNativeError,
  type NativeContext,
  type NativeEvaluateResult,
  type NativeModel,
  type NativeModelMetadata,
} from './native.js';
import { checkClassifyOptions, checkLoadOptions, type ClassifyOptions, type LoadOptions } from './options.js';
import { parsePolicy } from './policy.js';
import { tokenizePrompt, type AddedToken, type TokenizerBackend } from './prompt-tokens.js';
import { RISK_CATEGORIES, buildLabelMap } from './risk-map.js';
import {
  findReasonFirstLabel,
  parseExplanation,
  riskScoresFrom,
  tokenScoresFrom,
  type LabelToken,
  type RiskScore,
  type TokenScore,
} from './scoring.js';
import { ChatTemplate, type LiteralSpan } from './template.js';

export type ClassifyInput = string | ChatMessage[];

export interface PromptOptions {
  policy?: string;
  reasonFirst?: boolean;
}

export interface FormattedPrompt {
  /** The rendered chat template. */
  text: string;
  /** Token ids as the model reads them: template specials parsed, caller text literal. */
  tokens: Int32Array;
  /** Character ranges of `text` that came from the caller (message contents, policy). */
  literalSpans: LiteralSpan[];
}

export interface ClassifyUsage {
  promptTokens: number;
  /** Prompt tokens whose KV cache entries were reused from the previous request. */
  reusedTokens: number;
  /** Tokens passed through llama_decode: the prompt suffix plus generated tokens. */
  decodedTokens: number;
  generatedTokens: number;
  promptMs: number;
  generateMs: number;
  totalMs: number;
}

export interface ClassifyResult {
  /**
   * The label id the model chose (`sec`, `dw`, a policy letter, ...), read from the label
   * position. Null when a reason-first response ended before a label appeared.
   */
  label: string | null;
  /** "Dimension-Category" for a built-in id, the policy's name for an added one; null for a token that is no label. */
  category: string | null;
  /** Probability of the chosen label token. */
  score: number | null;
  /** Every label id (built-in and policy) with its probability, highest first. Empty when no label was found. */
  riskScores: RiskScore[];
  /** Top tokens at the label position: rank 1, and the others above 1e-4. */
  tokenScores: TokenScore[];
  /** Generated text, special tokens removed. Just the label token when nothing was generated. */
  response: string;
  /** Text inside the `<explanation>` tags, or null when the response has none. */
  explanation: string | null;
  /** Why generation stopped: 'label_only' when only the label position was decoded. */
  stopReason: 'label_only' | 'eog' | 'stop_token' | 'max_tokens' | 'context_full';
  usage: ClassifyUsage;
}

export interface ModelInfo {
  path: string;
  architecture: string;
  name: string;
  description: string;
  parameterCount: number;
  sizeBytes: number;
  trainContextLength: number;
  contextSize: number;
  batchSize: number;
  threads: number;
  vocabularySize: number;
  /** Source of the chat template: the model file or the chatTemplate option. */
  chatTemplateSource: 'model' | 'option';
}

/** The label tokens of a policy, resolved once per distinct policy text. */
interface PolicyLabels {
  labels: LabelToken[];
  tracked: Int32Array;
}

const MAX_POLICY_CACHE = 64;

export class XGuard {
  readonly #model: NativeModel;
  readonly #context: NativeContext;
  readonly #template: ChatTemplate;
  readonly #metadata: NativeModelMetadata;
  readonly #info: ModelInfo;
  readonly #addedTokens: AddedToken[];
  readonly #backend: TokenizerBackend;
  readonly #pieceCache = new Map<number, string>();
  readonly #policyCache = new Map<string, PolicyLabels>();
  #nextRequestId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(model: NativeModel, context: NativeContext, template: ChatTemplate, info: ModelInfo) {
    this.#model = model;
    this.#context = context;
    this.#template = template;
    this.#metadata = model.metadata();
    this.#info = info;
    this.#addedTokens = model.addedTokens().map(({ id, text }) => ({ id, text }));
    this.#backend = { tokenizeText: (texts) => this.#model.tokenizeBatch(texts, false) };
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
        vocabularySize: metadata.vocabularySize,
        chatTemplateSource: checked.chatTemplate === undefined ? 'model' : 'option',
      };
      const guard = new XGuard(model, context, template, info);
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
    const started = performance.now();
    this.#assertOpen();
    const checked = checkClassifyOptions(options);
    if (checked.signal?.aborted) {
      throw new XGuardError('ERR_ABORTED', 'The request was aborted before it started.', { cause: checked.signal.reason });
    }

    const { labels, tracked } = this.#labelsFor(checked.policy);
    const prompt = await this.formatPrompt(input, { policy: checked.policy, reasonFirst: checked.reasonFirst });
    const generate = checked.explain || checked.reasonFirst;

    const id = this.#nextRequestId++;
    const onAbort = (): void => {
      this.#context.abort(id);
    };
    checked.signal?.addEventListener('abort', onAbort, { once: true });

    let result: NativeEvaluateResult;
    try {
      if (checked.signal?.aborted) {
        throw new XGuardError('ERR_ABORTED', 'The request was aborted.', { cause: checked.signal.reason });
      }
      this.#assertOpen();
      result = await this.#context.evaluate({
        id,
        tokens: prompt.tokens,
        topK: checked.topK,
        tracked,
        maxNewTokens: generate ? checked.maxNewTokens : 0,
        allSteps: checked.reasonFirst,
      });
    } catch (error) {
      throw wrapNativeError(error);
    } finally {
      checked.signal?.removeEventListener('abort', onAbort);
    }

    return this.#buildResult(result, labels, checked.reasonFirst, generate, started);
  }

  /**
   * Rejects queued requests with ERR_CLOSED, stops the running one, and frees the context
   * and the model. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#closing = this.#context.dispose().finally(() => this.#model.dispose());
    }
    return this.#closing;
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

  #buildResult(
    result: NativeEvaluateResult,
    labels: LabelToken[],
    reasonFirst: boolean,
    generated: boolean,
    started: number,
  ): ClassifyResult {
    const usage: ClassifyUsage = {
      promptTokens: result.promptTokens,
      reusedTokens: result.reusedTokens,
      decodedTokens: result.decodedTokens,
      generatedTokens: result.generated.length,
      promptMs: result.promptMs,
      generateMs: result.generateMs,
      totalMs: performance.now() - started,
    };
    const first = result.steps[0];
    if (first === undefined) {
      throw new XGuardError('ERR_DECODE', 'The native evaluation returned no distribution for the label position.');
    }

    // The label position: the first generated token, or after the explanation with reasonFirst.
    let labelStep = 0;
    if (reasonFirst) {
      labelStep = findReasonFirstLabel(result.generated, (token) => this.#tokenText(token));
    }
    const distribution = labelStep >= 0 ? result.steps[labelStep] : undefined;

    const response = generated
      ? this.#model.detokenize(result.generated, false, false)
      : this.#tokenText(first.argmax);
    let stopReason: ClassifyResult['stopReason'] = 'label_only';
    if (generated) {
      stopReason = result.stopReason === 'none' ? 'max_tokens' : result.stopReason;
    }

    if (distribution === undefined) {
      return {
        label: null,
        category: null,
        score: null,
        riskScores: [],
        tokenScores: [],
        response,
        explanation: parseExplanation(response),
        stopReason,
        usage,
      };
    }

    const labelText = this.#tokenText(distribution.argmax).trim();
    const matched = labels.find((label) => label.token === distribution.argmax);
    return {
      label: labelText,
      category: matched?.category ?? null,
      score: Math.exp(distribution.topLogprobs[0] ?? Number.NEGATIVE_INFINITY),
      riskScores: riskScoresFrom(distribution, labels),
      tokenScores: tokenScoresFrom(distribution, (token) => this.#tokenText(token)),
      response,
      explanation: parseExplanation(response),
      stopReason,
      usage,
    };
  }
}
