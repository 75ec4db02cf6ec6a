// The x86 intrinsics and TE_X86 (1 on x86-64, else 0) for the CPU kernels that
// pick an instruction set at run time (pack_cpu.cpp, popcount_cpu.cpp).
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 headers build vectors from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports inside our functions once inlined (GCC bug
// 105593); the warning is about the header, not our code. Only source files
// include this header, so the pragmas stay out of other translation units.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define TE_X86 1
#else
#define TE_X86 0
#endif
