// Forced (-include) into llama.cpp's CPU backend when gcc builds it with AMX.
//
// gcc's _tile_loadconfig hands its 64-byte tile configuration to `ldtilecfg` through an asm
// memory operand typed as one pointer, so the optimizer treats it as an 8-byte read and may delete the
// stores that fill in the other 56 bytes (the row and column sizes). ldtilecfg then loads a
// configuration with no tiles, and the next tile instruction faults: SIGSEGV at ldtilecfg or
// SIGILL in a tile kernel, on Q8_0 batches of more than one token. This replaces the intrinsic
// with one whose operand covers the whole configuration. Not part of the addon's own sources.
#pragma once

#if defined(__AMX_TILE__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

typedef struct {
  unsigned char bytes[64];
} xguard_amx_tile_config;

#define _tile_loadconfig(config) \
  __asm__ volatile("ldtilecfg\t%X0" ::"m"(*(const xguard_amx_tile_config*)(config)))
#endif
