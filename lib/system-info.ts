// What the loaded llama.cpp build can do on this machine: its CPU backend variant and features,
// and every compute backend with its devices.

import { loadAddon } from './native.js';

export interface BackendDevice {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accelerator' | 'other';
  /** Bytes; 0 where the backend does not report them. */
  memoryTotal: number;
  memoryFree: number;
}

export interface BackendInfo {
  /** ggml's backend name: "CPU", "CUDA", "Vulkan", "Metal", ... */
  name: string;
  devices: BackendDevice[];
}

export interface SystemInfo {
  /** llama.cpp's feature line, for example "CPU : SSE3 = 1 | AVX2 = 1 | ...". */
  system: string;
  supportsMmap: boolean;
  supportsGpuOffload: boolean;
  maxDevices: number;
  /**
   * "dynamic" for a prebuilt addon, which loads its backends as modules at run time; "static"
   * for a source build, which links them in.
   */
  backendLoading: 'dynamic' | 'static';
  /**
   * The CPU backend in use: a prebuild's variant ("x64", "sse42", "haswell", "zen4",
   * "sapphirerapids", ...), or "native" / "generic" for a source build.
   */
  cpuVariant: string;
  /** File of the loaded CPU variant; null for a source build. */
  cpuModule: string | null;
  /** The variant XGUARD_CPU_VARIANT asked for, or null when xguard chose the best one. */
  requestedCpuVariant: string | null;
  /** Every CPU variant the prebuild ships; empty for a source build. */
  cpuVariants: string[];
  /** The CPU backend's compiled-in features, for example { AVX2: "1", AMX_INT8: "1" }. */
  cpuFeatures: Record<string, string>;
  backends: BackendInfo[];
}

export function systemInfo(): SystemInfo {
  const info = loadAddon().systemInfo();
  return { ...info, system: info.system.trim() };
}
