// Plain-text rendering of a classification for the terminal.

import type { ClassifyResult } from '../types.js';

const TOP_RISKS = 8;

function percent(score: number): string {
  return `${(score * 100).toFixed(2)}%`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function formatResultTable(result: ClassifyResult): string {
  const lines: string[] = [];
  if (result.label === null) {
    lines.push(`label: none (generation stopped before a label: ${result.stopReason})`);
  } else {
    const category = result.category ?? 'not a known label id';
    lines.push(`label: ${result.label} (${category}), probability ${percent(result.score ?? 0)}`);
  }

  if (result.riskScores.length > 0) {
    lines.push('', 'top risks:');
    const rows = result.riskScores.slice(0, TOP_RISKS).map((risk) => [risk.id, risk.category, percent(risk.score)]);
    lines.push(table(['id', 'category', 'probability'], rows));
  }

  if (result.explanation !== null) {
    lines.push('', 'explanation:', result.explanation);
  } else if (result.usage.generatedTokens > 0) {
    lines.push('', 'response (no <explanation> tags found):', result.response);
  }

  const usage = result.usage;
  lines.push(
    '',
    `tokens: ${usage.promptTokens} prompt (${usage.reusedTokens} reused), ${usage.generatedTokens} generated; ` +
      `${usage.totalMs.toFixed(0)} ms`,
  );
  return lines.join('\n');
}
