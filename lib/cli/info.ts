// `xguard info`: which llama.cpp build is loaded and what it uses on this machine.

import { parseArgs } from 'node:util';

import { systemInfo, type SystemInfo } from '../system-info.js';

export const INFO_USAGE = `usage: xguard info [--json]

Prints how the native addon was built, the CPU backend variant it chose for this machine, that
variant's instruction-set features, and the compute backends with their devices.

options:
  --json    print everything as JSON`;

function formatBytes(bytes: number): string {
  return bytes > 0 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : 'size unknown';
}

function formatInfo(info: SystemInfo, version: string): string {
  const lines = [`xguard-node ${version}`];
  if (info.backendLoading === 'dynamic') {
    const how = info.requestedCpuVariant !== null ? 'set by XGUARD_CPU_VARIANT' : 'the best this CPU supports';
    lines.push(`addon: prebuilt; CPU backend variant ${info.cpuVariant} (${how})`);
    lines.push(`variants shipped: ${info.cpuVariants.join(', ')}`);
    if (info.cpuModule !== null) {
      lines.push(`loaded from: ${info.cpuModule}`);
    }
  } else {
    lines.push(`addon: built from source; CPU backend compiled for ${info.cpuVariant === 'native' ? 'this machine (GGML_NATIVE)' : 'any CPU of this architecture'}`);
  }

  const features = Object.entries(info.cpuFeatures)
    .filter(([, value]) => value !== '0')
    .map(([name, value]) => (value === '1' ? name : `${name}=${value}`));
  lines.push(`CPU features: ${features.join(' ') || 'none reported'}`);

  for (const backend of info.backends) {
    const devices = backend.devices.map((device) => `${device.description || device.name} (${device.type}, ${formatBytes(device.memoryTotal)})`);
    lines.push(`backend ${backend.name}: ${devices.join('; ') || 'no devices'}`);
  }
  lines.push(`GPU offload: ${info.supportsGpuOffload ? 'available' : 'not available'}; mmap: ${info.supportsMmap ? 'yes' : 'no'}`);
  return lines.join('\n');
}

export function runInfo(args: string[], version: string): number {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(INFO_USAGE);
    return 0;
  }
  const info = systemInfo();
  console.log(values.json ? JSON.stringify({ version, ...info }, null, 2) : formatInfo(info, version));
  return 0;
}
