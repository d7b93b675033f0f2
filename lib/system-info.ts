// Features and backends of the loaded llama.cpp build on this machine.

import { loadAddon } from './native.js';

export interface SystemInfo {
  /** llama.cpp's feature line, for example "CPU : SSE3 = 1 | AVX2 = 1 | ...". */
  system: string;
  supportsMmap: boolean;
  supportsGpuOffload: boolean;
  maxDevices: number;
}

export function systemInfo(): SystemInfo {
  const info = loadAddon().systemInfo();
  return {
    system: info.system.trim(),
    supportsMmap: info.supportsMmap,
    supportsGpuOffload: info.supportsGpuOffload,
    maxDevices: info.maxDevices,
  };
}
