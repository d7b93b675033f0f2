// Types of scripts/fetch-llama.mjs for the TypeScript files that import it.

export declare const LLAMA_SOURCE: Readonly<{
  packageSpec: string;
  tarballIntegrity: string;
  bundlePath: string;
  infoPath: string;
  tag: string;
  commit: string;
}>;

export declare const VENDOR_DIR: string;

/** Returns the llama.cpp source folder, fetching it into vendor/llama.cpp when needed. */
export declare function ensureLlamaSource(log?: (line: string) => void): Promise<string>;
