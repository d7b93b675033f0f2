// Public entry point of xguard-node.

export { XGuard } from './xguard.js';
export type {
  ClassifyDecision,
  ClassifyInput,
  ClassifyResult,
  ClassifyStreamEvent,
  ClassifyUsage,
  FormattedPrompt,
  GuardStats,
  PrefixCacheStats,
  ModelInfo,
  PromptOptions,
} from './types.js';
export type { ClassifyOptions, FlashAttention, LoadOptions } from './options.js';
export type { ChatMessage, ChatRole } from './conversation.js';
export type { RiskScore, TokenScore } from './scoring.js';
export type { LiteralSpan } from './template.js';
export { XGuardError } from './errors.js';
export type { XGuardErrorCode } from './errors.js';
export { RISK_CATEGORIES, LABEL_IDS, buildLabelMap } from './risk-map.js';
export type { RiskCategory } from './risk-map.js';
export { DEFAULT_THRESHOLDS, checkThresholds, decide, judgedTurnOf, parseThresholds } from './decide.js';
export type { Decision, FlaggedCategory, JudgedTurn, Thresholds, TurnThresholds } from './decide.js';
export { parsePolicy } from './policy.js';
export type { PolicyCategory } from './policy.js';
export { setLogger } from './logging.js';
export type { LogLevel, Logger } from './logging.js';
export { systemInfo } from './system-info.js';
export type { SystemInfo } from './system-info.js';
