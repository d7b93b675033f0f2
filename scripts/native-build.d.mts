// Types of scripts/native-build.mjs for the TypeScript files that import it.

/** The tools a source build needs that are not on PATH, as install hints. */
export declare function missingBuildTools(): string[];

/** CMake definitions from the environment, as cmake-js `--CD` arguments. */
export declare function cmakeDefinitionsFromEnv(env?: NodeJS.ProcessEnv): string[];

export declare function runCmakeJs(options: {
  projectRoot: string;
  llamaDir: string;
  outDir: string;
  variants: boolean;
  rebuild?: boolean;
}): number;

/** A digest of everything that shapes the native build. */
export declare function nativeSourceHash(projectRoot: string, llamaCommit: string): string;

/** `<platform>-<arch>`, the prebuild folder node-gyp-build looks for. */
export declare function prebuildFolderName(): string;

/** The addon's file name in that folder, with the tags node-gyp-build matches. */
export declare function prebuildAddonName(): string;
