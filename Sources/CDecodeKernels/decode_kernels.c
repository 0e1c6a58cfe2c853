// Matrix-vector products for decoding, block dequantization and (float_products.c) few-row products with
// float weights (see include/decode_kernels.h), with the thread pool that splits them. Q4_1 (the default
// model's type) and Q8_0 have hand-written kernels here; the other block types are unpacked as groups in block_groups.c. Block layouts are GGML's:
// Q4_1 = f16 scale d, f16 offset m, 16 bytes whose low nibbles are elements 0-15 and high nibbles
// elements 16-31 (value d·q + m); Q8_0 = f16 scale d, 32 signed bytes (value d·q).
// The AVX2 and AVX-512 paths are compiled with a target attribute and chosen at run time (the widest the
// CPU has, or a narrower one tests ask for), so the binary still runs (on the portable loops) on x86-64
// CPUs without them and on other architectures.
#define _GNU_SOURCE
#include "decode_kernels.h"
#include "block_groups.h"
#include "float_products.h"
#include "kernel_common.h"
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static void gemv_q4_1_portable(const uint8_t *w, int64_t cols, const float *x, const float *sums, float *y,
                               int64_t begin, int64_t end, int accumulate) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 20;
        float total = 0;
        for (int64_t b = 0; b < nb; b++, block += 20) {
            const float *xb = x + b * 32;
            float s = 0;
            for (int j = 0; j < 16; j++) s += (float)(block[4 + j] & 0x0F) * xb[j] + (float)(block[4 + j] >> 4) * xb[j + 16];
            total += half_to_float(block) * s + half_to_float(block + 2) * sums[b];
        }
        y[r] = accumulate ? y[r] + total : total;
    }
}

static void gemv_q8_0_portable(const uint8_t *w, int64_t cols, const float *x, float *y, int64_t begin, int64_t end,
                               int accumulate) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 34;
        float total = 0;
        for (int64_t b = 0; b < nb; b++, block += 34) {
            const int8_t *q = (const int8_t *)(block + 2);
            const float *xb = x + b * 32;
            float s = 0;
            for (int j = 0; j < 32; j++) s += (float)q[j] * xb[j];
            total += half_to_float(block) * s;
        }
        y[r] = accumulate ? y[r] + total : total;
    }
}

static void gemv_f32_portable(const float *w, int64_t cols, const float *x, float *y, int64_t begin, int64_t end,
                              int accumulate) {
    for (int64_t r = begin; r < end; r++) {
        const float *row = w + r * cols;
        float total = 0;
        for (int64_t c = 0; c < cols; c++) total += row[c] * x[c];
        y[r] = accumulate ? y[r] + total : total;
    }
}

// Dequantizers: rows `begin ..< end` of the blocks into `out` (row r at out + r·cols). The scale is
// multiplied and the offset added as two roundings (separate statements, never fused into one
// multiply-add), the same floats as Swift's `Dequantize`.
static void dequantize_q4_1_portable(const uint8_t *w, int64_t cols, float *out, int64_t begin, int64_t end) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 20;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += 20, y += 32) {
            const float d = half_to_float(block), m = half_to_float(block + 2);
            for (int j = 0; j < 16; j++) {
                float lo = (float)(block[4 + j] & 0x0F) * d, hi = (float)(block[4 + j] >> 4) * d;
                y[j] = lo + m;
                y[j + 16] = hi + m;
            }
        }
    }
}

static void dequantize_q8_0_portable(const uint8_t *w, int64_t cols, float *out, int64_t begin, int64_t end) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 34;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += 34, y += 32) {
            const float d = half_to_float(block);
            const int8_t *q = (const int8_t *)(block + 2);
            for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMV_PF 8192 // bytes ahead of the row being read (4 KiB and 16 KiB did no better)
VECTOR_TARGET static void gemv_f32_avx2(const float *w, int64_t cols, const float *x, float *y, int64_t begin,
                                        int64_t end, int accumulate) {
    for (int64_t r = begin; r < end; r++) {
        const float *row = w + r * cols;
        // Four accumulators: one would wait on its own latency every step.
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        int64_t c = 0;
        for (; c + 32 <= cols; c += 32) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(x + c), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 8), _mm256_loadu_ps(x + c + 8), s1);
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 16), _mm256_loadu_ps(x + c + 16), s2);
            s3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 24), _mm256_loadu_ps(x + c + 24), s3);
        }
        for (; c + 8 <= cols; c += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(x + c), s0);
        float total = horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        for (; c < cols; c++) total += row[c] * x[c];
        y[r] = accumulate ? y[r] + total : total;
    }
}

// The same product with 16 lanes where the CPU has AVX-512: one-token decoding streams every float weight
// once per token, and the wider loads, with the rows asked for GEMV_PF bytes ahead (the weights are a
// mapped file in 4 KiB pages, at whose ends the hardware prefetchers stop), take it nearer the memory's
// rate (benchmarks/results/inference-intel: 42.8 → 55.7 tok/s). The last cols % 16 elements go through a
// masked load.
__attribute__((target("avx512f,fma"))) static void gemv_f32_avx512(const float *w, int64_t cols, const float *x, float *y,
                                                                   int64_t begin, int64_t end, int accumulate) {
    const __mmask16 tail = (__mmask16)((1u << (cols % 16)) - 1);
    const int64_t last = end * cols, ahead = GEMV_PF / (int64_t)sizeof(float);
    for (int64_t r = begin; r < end; r++) {
        const float *row = w + r * cols;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        int64_t c = 0;
        for (; c + 64 <= cols; c += 64) {
            if (r * cols + c + ahead + 64 <= last) {
                const char *next = (const char *)(row + c + ahead);
                _mm_prefetch(next, _MM_HINT_T0);
                _mm_prefetch(next + 64, _MM_HINT_T0);
                _mm_prefetch(next + 128, _MM_HINT_T0);
                _mm_prefetch(next + 192, _MM_HINT_T0);
            }
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c), _mm512_loadu_ps(x + c), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(x + c + 16), s1);
            s2 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 32), _mm512_loadu_ps(x + c + 32), s2);
            s3 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 48), _mm512_loadu_ps(x + c + 48), s3);
        }
        for (; c + 16 <= cols; c += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c), _mm512_loadu_ps(x + c), s0);
        if (tail) s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, row + c), _mm512_maskz_loadu_ps(tail, x + c), s1);
        float total = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
        y[r] = accumulate ? y[r] + total : total;
    }
}

VECTOR_TARGET static void dequantize_q4_1_avx2(const uint8_t *w, int64_t cols, float *out, int64_t begin,
                                               int64_t end) {
    const int64_t nb = cols / 32;
    const __m128i low = _mm_set1_epi8(0x0F);
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 20;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += 20, y += 32) {
            const __m256 d = _mm256_set1_ps(half_f16c(block)), m = _mm256_set1_ps(half_f16c(block + 2));
            __m128i q = _mm_loadu_si128((const __m128i *)(block + 4));
            __m128i lo = _mm_and_si128(q, low), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
            __m128i parts[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
            for (int k = 0; k < 4; k++) {
                __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k])), d);
                _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(scaled, m));
            }
        }
    }
}

VECTOR_TARGET static void dequantize_q8_0_avx2(const uint8_t *w, int64_t cols, float *out, int64_t begin,
                                               int64_t end) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 34;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += 34, y += 32) {
            const __m256 d = _mm256_set1_ps(half_f16c(block));
            for (int j = 0; j < 32; j += 8) {
                __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 2 + j))));
                _mm256_storeu_ps(y + j, _mm256_mul_ps(q, d));
            }
        }
    }
}

// Up to four activation rows per sweep: each block is unpacked once and multiplied with every row. Each
// row's sum is formed the same way whatever `count` is (one-token decoding is `count` = 1), so a token's
// numbers do not depend on how many others share its pass.
// Inlined with a constant `count` (see `gemm4_avx2`), so that the loops over k unroll and the
// accumulators stay in registers.
VECTOR_TARGET static inline __attribute__((always_inline)) void gemm4_q4_1_avx2(
    const uint8_t *w, int64_t cols, const float *x, const float *sums, const int count, float *y, int64_t ldy,
    int64_t begin, int64_t end, int accumulate) {
    const int64_t nb = cols / 32;
    const __m128i low = _mm_set1_epi8(0x0F);
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 20;
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
        float offsets[4] = { 0, 0, 0, 0 };
        for (int64_t b = 0; b < nb; b++, block += 20) {
            __m128i q = _mm_loadu_si128((const __m128i *)(block + 4));
            __m128i lo = _mm_and_si128(q, low), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
            __m256 q0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
            __m256 q1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
            __m256 q2 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
            __m256 q3 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
            const __m256 d = _mm256_set1_ps(half_f16c(block));
            const float m = half_f16c(block + 2);
            for (int k = 0; k < count; k++) {
                const float *xb = x + k * cols + b * 32;
                __m256 s = _mm256_mul_ps(q0, _mm256_loadu_ps(xb));
                s = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xb + 8), s);
                s = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xb + 16), s);
                s = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xb + 24), s);
                acc[k] = _mm256_fmadd_ps(d, s, acc[k]);
                offsets[k] += m * sums[k * nb + b];
            }
        }
        for (int k = 0; k < count; k++) {
            float total = horizontal_sum(acc[k]) + offsets[k];
            float *out = y + k * ldy + r;
            *out = accumulate ? *out + total : total;
        }
    }
}

VECTOR_TARGET static inline __attribute__((always_inline)) void gemm4_q8_0_avx2(
    const uint8_t *w, int64_t cols, const float *x, const int count, float *y, int64_t ldy, int64_t begin, int64_t end,
    int accumulate) {
    const int64_t nb = cols / 32;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * 34;
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
        for (int64_t b = 0; b < nb; b++, block += 34) {
            __m256 q[4];
            for (int j = 0; j < 4; j++) q[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 2 + 8 * j))));
            const __m256 d = _mm256_set1_ps(half_f16c(block));
            for (int k = 0; k < count; k++) {
                const float *xb = x + k * cols + b * 32;
                __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
                for (int j = 1; j < 4; j++) s = _mm256_fmadd_ps(q[j], _mm256_loadu_ps(xb + 8 * j), s);
                acc[k] = _mm256_fmadd_ps(d, s, acc[k]);
            }
        }
        for (int k = 0; k < count; k++) {
            float total = horizontal_sum(acc[k]);
            float *out = y + k * ldy + r;
            *out = accumulate ? *out + total : total;
        }
    }
}

// The same products with 16 lanes where the CPU has AVX-512: a block's 32 values are two vectors (its low
// and its high nibbles, or its two halves of bytes) instead of four, so a block costs about half the
// unpacking and multiplying. Even and odd blocks go to two accumulators per row, so that a row does not
// wait on one accumulator's latency at every block. As with AVX2, each row's sum is formed the same way
// whatever `count` is.
#define DECODE512_TARGET __attribute__((target("avx512f,avx2,fma,f16c")))

// One block of Q4_1 into the accumulators `acc` (one per row of x); its offset m goes to `m_out` (after the
// row, the offsets times the block sums of x are added to the accumulators lane by lane).
DECODE512_TARGET static inline __attribute__((always_inline)) void q4_1_block_avx512(
    const uint8_t *block, const float *x, int64_t cols, int64_t b, const int count, __m512 *acc, float *m_out) {
    const __m128i low = _mm_set1_epi8(0x0F);
    int32_t scales;
    memcpy(&scales, block, 4);
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(scales)); // d, m
    _mm_store_ss(m_out, _mm_movehdup_ps(dm));
    const __m512 d = _mm512_broadcastss_ps(dm);
    __m128i q = _mm_loadu_si128((const __m128i *)(block + 4));
    __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, low)));
    __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), low)));
    for (int k = 0; k < count; k++) {
        const float *xb = x + k * cols + b * 32;
        __m512 s = _mm512_mul_ps(q0, _mm512_loadu_ps(xb));
        s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), s);
        acc[k] = _mm512_fmadd_ps(d, s, acc[k]);
    }
}

/// s + a[i]·b[i] for the n floats, lane by lane, 16 at a time (the last n % 16 masked).
DECODE512_TARGET static inline __m512 add_products_avx512(__m512 s, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
    if (i < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i), _mm512_maskz_loadu_ps(tail, b + i), s);
    }
    return s;
}

// One block of Q8_0 into the accumulators `acc` (one per row of x).
DECODE512_TARGET static inline __attribute__((always_inline)) void q8_0_block_avx512(
    const uint8_t *block, const float *x, int64_t cols, int64_t b, const int count, __m512 *acc) {
    __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 2))));
    __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 18))));
    const __m512 d = _mm512_set1_ps(half_f16c(block));
    for (int k = 0; k < count; k++) {
        const float *xb = x + k * cols + b * 32;
        __m512 s = _mm512_mul_ps(q0, _mm512_loadu_ps(xb));
        s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), s);
        acc[k] = _mm512_fmadd_ps(d, s, acc[k]);
    }
}

// One block of either type (`type` is a constant where this is inlined).
DECODE512_TARGET static inline __attribute__((always_inline)) void block_avx512(
    const int type, const uint8_t *block, const float *x, int64_t cols, int64_t b, const int count, __m512 *acc,
    float *offsets) {
    if (type == ENGRAM_Q4_1) q4_1_block_avx512(block, x, cols, b, count, acc, offsets + b);
    else q8_0_block_avx512(block, x, cols, b, count, acc);
}

// Rows begin ..< end of W (Q4_1 or Q8_0) times the `count` rows of x. `offsets` holds a row's Q4_1 block
// offsets.
DECODE512_TARGET static inline __attribute__((always_inline)) void gemm4_blocks_avx512(
    const int type, const uint8_t *w, int64_t cols, const float *x, const float *sums, const int count, float *y,
    int64_t ldy, int64_t begin, int64_t end, int accumulate, float *offsets) {
    const int64_t nb = cols / 32, size = type == ENGRAM_Q4_1 ? 20 : 34;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * size;
        __m512 even[4], odd[4];
        for (int k = 0; k < 4; k++) even[k] = odd[k] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2, block += 2 * size) {
            block_avx512(type, block, x, cols, b, count, even, offsets);
            block_avx512(type, block + size, x, cols, b + 1, count, odd, offsets);
        }
        if (b < nb) block_avx512(type, block, x, cols, b, count, even, offsets);
        for (int k = 0; k < count; k++) {
            __m512 lanes = _mm512_add_ps(even[k], odd[k]);
            if (type == ENGRAM_Q4_1) lanes = add_products_avx512(lanes, offsets, sums + k * nb, nb);
            float total = _mm512_reduce_add_ps(lanes);
            float *out = y + k * ldy + r;
            *out = accumulate ? *out + total : total;
        }
    }
}

VECTOR_TARGET static void gemm4_avx2(int type, const void *w, int64_t cols, const float *x, const float *sums, int count,
                                     float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate);

DECODE512_TARGET static void gemm4_avx512(int type, const void *w, int64_t cols, const float *x, const float *sums,
                                          int count, float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate) {
    // A row's Q4_1 block offsets, stored one by one and multiplied after the row (on SmolLM2's Q4_1 file this
    // decoded about 7% faster than gathering them in a register, and a little faster than adding them every
    // 16 blocks). Rows of more than 1024 blocks (32768 values) take the AVX2 kernel.
    float offsets[1024];
    if (type == ENGRAM_Q4_1 && cols / 32 > 1024) {
        gemm4_avx2(type, w, cols, x, sums, count, y, ldy, begin, end, accumulate);
        return;
    }
#define GEMM4_CASE(k) case k: \
        if (type == ENGRAM_Q4_1) gemm4_blocks_avx512(ENGRAM_Q4_1, w, cols, x, sums, k, y, ldy, begin, end, accumulate, offsets); \
        else gemm4_blocks_avx512(ENGRAM_Q8_0, w, cols, x, sums, k, y, ldy, begin, end, accumulate, offsets); \
        return;
    switch (count) { GEMM4_CASE(1) GEMM4_CASE(2) GEMM4_CASE(3) default: GEMM4_CASE(4) }
#undef GEMM4_CASE
}

VECTOR_TARGET static void gemm4_avx2(int type, const void *w, int64_t cols, const float *x, const float *sums, int count,
                                     float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate) {
#define GEMM4_CASE(k) case k: \
        if (type == ENGRAM_Q4_1) gemm4_q4_1_avx2(w, cols, x, sums, k, y, ldy, begin, end, accumulate); \
        else gemm4_q8_0_avx2(w, cols, x, k, y, ldy, begin, end, accumulate); \
        return;
    switch (count) { GEMM4_CASE(1) GEMM4_CASE(2) GEMM4_CASE(3) default: GEMM4_CASE(4) }
#undef GEMM4_CASE
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

int engram_cpu_vector_bits(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl")) return 512;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 256 : 0;
}
#else
static int cpu_has_avx2(void) { return 0; }
static int cpu_has_avx512(void) { return 0; }
int engram_cpu_vector_bits(void) { return 0; }
#endif

// The widest vectors the kernels may use on this CPU: 512 where it has AVX-512 F beside AVX2/FMA/F16C (the
// AVX-512 paths use those too), 256 with AVX2/FMA/F16C alone, else 0 (the portable loops).
static int widest_usable_bits(void) {
    if (!cpu_has_avx2()) return 0;
    return cpu_has_avx512() ? 512 : 256;
}

// -1 until first asked; then the widest vectors the kernels use (pool workers read it too).
static atomic_int kernel_bits = -1;

static int vector_bits(void) {
    int bits = atomic_load_explicit(&kernel_bits, memory_order_relaxed);
    if (bits < 0) {
        // Only over the unset value: a cap set meanwhile (by a test) stays.
        int unset = -1, widest = widest_usable_bits();
        bits = atomic_compare_exchange_strong(&kernel_bits, &unset, widest) ? widest : unset;
    }
    return bits;
}

// A product reads the width once and hands it to all its pieces. 512 runs the AVX-512 paths (one-row float
// products, the Q4_1/Q8_0 products, and the few-row float products, whose only vector path this is) and
// the AVX2 ones of the other block types; 256 the AVX2 paths alone.
int engram_decode_kernels_vectorized(void) { return vector_bits() >= 256; }
int engram_decode_kernels_vector_bits(void) { return vector_bits(); }
int engram_float_products_vectorized(void) { return vector_bits() >= 512; }

void engram_decode_kernels_set_vector_bits(int bits) {
    const int widest = widest_usable_bits();
    int chosen = bits >= 512 ? 512 : bits >= 256 ? 256 : 0;
    atomic_store_explicit(&kernel_bits, chosen < widest ? chosen : widest, memory_order_relaxed);
}

void engram_decode_kernels_set_vectorized(int enabled) { engram_decode_kernels_set_vector_bits(enabled ? 512 : 0); }

// The rows `begin ..< end` of a one-row product over float rows (the PRODUCT job).
static void gemv_f32_rows(const float *weights, int64_t cols, const float *x, float *y, int64_t begin, int64_t end,
                          int accumulate, int bits) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (bits >= 512) {
        gemv_f32_avx512(weights, cols, x, y, begin, end, accumulate);
        return;
    }
    if (bits >= 256) {
        gemv_f32_avx2(weights, cols, x, y, begin, end, accumulate);
        return;
    }
#endif
    gemv_f32_portable(weights, cols, x, y, begin, end, accumulate);
}

static void dequantize_rows(int type, const void *weights, int64_t cols, float *out, int64_t begin, int64_t end,
                            int bits) {
    if (group_type(type)) {
        group_dequantize_rows(type, weights, cols, out, begin, end, bits >= 256);
        return;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (bits >= 256) {
        if (type == ENGRAM_Q4_1) dequantize_q4_1_avx2(weights, cols, out, begin, end);
        else dequantize_q8_0_avx2(weights, cols, out, begin, end);
        return;
    }
#endif
    if (type == ENGRAM_Q4_1) dequantize_q4_1_portable(weights, cols, out, begin, end);
    else dequantize_q8_0_portable(weights, cols, out, begin, end);
}

// Rows `begin ..< end` of Y[n, rows] = X[n, cols] · Wᵀ, every element as it is for that row of X alone,
// over slices of 64 weight rows (which stay in cache for every row of X): the vector path shares each
// block's unpacking among four rows of X, the portable one runs the one-row loops. `sums[b]` is the sum of
// a row of X over values 32b ..< 32b + 32 (Q4_1 only: its per-block offset multiplies it).
static void small_gemm_rows(int type, const void *weights, int64_t cols, const float *x, const float *sums, int64_t n,
                            float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate, int bits) {
    if (group_type(type)) {
        group_gemm_rows(type, weights, cols, x, sums, n, y, ldy, begin, end, accumulate, bits >= 256);
        return;
    }
    const int64_t nb = cols / 32;
    for (int64_t slice = begin; slice < end; slice += 64) {
        int64_t stop = slice + 64 < end ? slice + 64 : end;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (bits >= 256) {
            void (*gemm4)(int, const void *, int64_t, const float *, const float *, int, float *, int64_t, int64_t, int64_t, int) =
                bits >= 512 ? gemm4_avx512 : gemm4_avx2;
            for (int64_t i = 0; i < n; i += 4) {
                int count = n - i < 4 ? (int)(n - i) : 4;
                gemm4(type, weights, cols, x + i * cols, type == ENGRAM_Q4_1 ? sums + i * nb : NULL, count, y + i * ldy, ldy,
                      slice, stop, accumulate);
            }
            continue;
        }
#endif
        for (int64_t i = 0; i < n; i++) {
            if (type == ENGRAM_Q4_1) gemv_q4_1_portable(weights, cols, x + i * cols, sums + i * nb, y + i * ldy, slice, stop, accumulate);
            else gemv_q8_0_portable(weights, cols, x + i * cols, y + i * ldy, slice, stop, accumulate);
        }
    }
}

// ---- Splitting one product over threads ----
//
// A decoded token makes about two hundred small products, each a few microseconds long, so waking a
// thread per product (or going through a dispatch queue) would cost as much as the work. The workers
// instead spin on a generation counter for a while after each product and only then sleep on a
// condition variable; the thread that posts a product does the first piece itself.

#define MAX_WORKERS 15
#define SPINS_BEFORE_SLEEP 500 // about 10-30 µs: longer than the gaps between the products of one token

enum { PRODUCT, DEQUANTIZE, SMALL_GEMM, FLOAT_NT, FLOAT_NN };

typedef struct {
    int kind;                      // PRODUCT (float rows), DEQUANTIZE or SMALL_GEMM (blocks), FLOAT_NT or FLOAT_NN
    int type, accumulate, pieces;
    const void *weights;
    int64_t rows, cols;
    int64_t n;                     // SMALL_GEMM, FLOAT_NT, FLOAT_NN: rows of x (y has `rows` columns)
    const float *x, *sums;
    float *y;
    int64_t ld;                    // FLOAT_NT: y's leading dimension; FLOAT_NN: x's (dY)
    int bits;                      // the vector width (512, 256, 0), chosen once for all pieces
    const float *xt;               // FLOAT_NT's vector path: x transposed (`float_nt_transpose`)
} product;

// What a product is split into: FLOAT_NN's pieces are tiles of columns of dX, every other kind's rows of
// the weight (or of y).
static int64_t split_units(const product *p) {
    return p->kind == FLOAT_NN ? (p->cols + FLOAT_NN_COLUMN_TILE - 1) / FLOAT_NN_COLUMN_TILE : p->rows;
}

static struct {
    pthread_mutex_t post;          // one product in the pool at a time
    pthread_mutex_t sleep;         // guards sleepers and the condition
    pthread_cond_t wake;
    int workers, sleepers;
    product job;
    atomic_uint generation;        // bumped once per posted product
    atomic_int acknowledged;       // workers done with the current product
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static inline void pause_briefly(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void run_piece(const product *p, int piece) {
    int64_t units = split_units(p), begin = units * piece / p->pieces, end = units * (piece + 1) / p->pieces;
    if (begin >= end) return;
    switch (p->kind) {
    case PRODUCT: gemv_f32_rows(p->weights, p->cols, p->x, p->y, begin, end, p->accumulate, p->bits); return;
    case DEQUANTIZE: dequantize_rows(p->type, p->weights, p->cols, p->y, begin, end, p->bits); return;
    case FLOAT_NT: float_gemm_nt_rows(p->weights, p->cols, p->x, p->xt, p->n, p->y, p->ld, begin, end, p->accumulate, p->bits >= 512); return;
    case FLOAT_NN:
        begin *= FLOAT_NN_COLUMN_TILE;
        end = end * FLOAT_NN_COLUMN_TILE < p->cols ? end * FLOAT_NN_COLUMN_TILE : p->cols;
        float_gemm_nn_cols(p->weights, p->rows, p->cols, p->x, p->ld, p->n, p->y, begin, end, p->accumulate, p->bits >= 512);
        return;
    default: small_gemm_rows(p->type, p->weights, p->cols, p->x, p->sums, p->n, p->y, p->rows, begin, end, p->accumulate, p->bits); return;
    }
}

typedef struct { int index; unsigned generation; } worker_start;

static void *worker_main(void *argument) {
    // The generation current when the worker was created, not when it first runs: a product posted in
    // between must still be seen as new.
    worker_start start = *(worker_start *)argument;
    free(argument);
    int index = start.index; // pieces 1, 2, ...: piece 0 is the poster's
    unsigned seen = start.generation;
    for (;;) {
        unsigned now;
        int spins = 0;
        while ((now = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
            if (++spins < SPINS_BEFORE_SLEEP) { pause_briefly(); continue; }
            pthread_mutex_lock(&pool.sleep);
            pool.sleepers++;
            while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) pthread_cond_wait(&pool.wake, &pool.sleep);
            pool.sleepers--;
            pthread_mutex_unlock(&pool.sleep);
            spins = 0;
        }
        seen = now;
        if (index < pool.job.pieces) run_piece(&pool.job, index);
        atomic_fetch_add_explicit(&pool.acknowledged, 1, memory_order_acq_rel);
    }
    return NULL;
}

/// A child process has none of the parent's threads: it starts with an empty pool (and fresh locks,
/// which a parent thread may have held at the fork).
static void forget_pool_after_fork(void) {
    pthread_mutex_init(&pool.post, NULL);
    pthread_mutex_init(&pool.sleep, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.workers = 0;
    pool.sleepers = 0;
}

/// Starts workers until there are `wanted` (called with `post` held). Returns how many there are.
static int grow_pool(int wanted) {
    static int fork_handler_installed = 0; // under `post`
    if (!fork_handler_installed) fork_handler_installed = pthread_atfork(NULL, NULL, forget_pool_after_fork) == 0;
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    while (pool.workers < wanted) {
        worker_start *start = malloc(sizeof *start);
        if (!start) break;
        start->index = pool.workers + 1;
        start->generation = atomic_load_explicit(&pool.generation, memory_order_acquire);
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, worker_main, start);
        pthread_attr_destroy(&attributes);
        if (failed) { free(start); break; }
        pool.workers++;
    }
    return pool.workers;
}

/// The CPUs this process may run on: more spinning threads than that would wait on each other.
static int usable_cpus(void) {
    static atomic_int cached = 0;
    int known = atomic_load_explicit(&cached, memory_order_relaxed);
    if (known == 0) {
        int count = 0;
#if defined(__linux__)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) count = CPU_COUNT(&set);
#endif
        if (count <= 0) count = (int)sysconf(_SC_NPROCESSORS_ONLN);
        known = count > 0 ? count : 1;
        atomic_store_explicit(&cached, known, memory_order_relaxed);
    }
    return known;
}

/// Runs a product whose block sums are ready: on the calling thread alone, or split over the pool.
static void run_product(product job, int threads) {
    if (threads > usable_cpus()) threads = usable_cpus();
    // Below ~32k weights a piece is shorter than handing it over.
    const int64_t units = split_units(&job);
    if (threads <= 1 || units < 2 || job.rows * job.cols < (1 << 15) || pthread_mutex_trylock(&pool.post) != 0) {
        run_piece(&job, 0);
        return;
    }
    int workers = grow_pool(threads - 1);
    job.pieces = workers + 1 < threads ? workers + 1 : threads;
    if (job.pieces > units) job.pieces = (int)units;
    if (job.pieces <= 1) {
        pthread_mutex_unlock(&pool.post);
        run_piece(&job, 0);
        return;
    }
    pool.job = job;
    atomic_store_explicit(&pool.acknowledged, 0, memory_order_relaxed);
    pthread_mutex_lock(&pool.sleep);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_acq_rel);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep);
    run_piece(&job, 0);
    // Every worker acknowledges every product (those without a piece at once), so none can still be
    // reading `pool.job` when the next product replaces it. On a busy machine a worker may have lost its
    // CPU: after a while, yield ours to it.
    for (int spins = 0; atomic_load_explicit(&pool.acknowledged, memory_order_acquire) < workers; spins++) {
        if (spins < SPINS_BEFORE_SLEEP) pause_briefly(); else sched_yield();
    }
    pthread_mutex_unlock(&pool.post);
}

// Offsets multiply sums of x: Q4_1's block offset the sum over each 32 values, the grouped types' offsets
// the sum over each 16. They are summed once per call for each of the n rows of x, not once per weight
// row. Up to 1024 sums fit the caller's stack buffer `local` (callers may run on threads with small
// stacks); more are allocated. The caller frees what is not `local`. NULL when the type has no offsets.
static float *offset_sums(int type, const float *x, int64_t n, int64_t cols, float *local) {
    const int64_t width = type == ENGRAM_Q4_1 ? 32 : group_type(type) && group_type_has_offset(type) ? 16 : 0;
    if (width == 0) return NULL;
    const int64_t spans = cols / width, count = n * spans;
    float *sums = local;
    if (count > 1024 && !(sums = malloc(sizeof(float) * (size_t)count))) abort(); // as Swift does when out of memory
    for (int64_t b = 0; b < count; b++) {
        const float *xb = x + (b / spans) * cols + (b % spans) * width;
        float s = 0;
        for (int j = 0; j < width; j++) s += xb[j];
        sums[b] = s;
    }
    return sums;
}

static int block_type(int type) { return type == ENGRAM_Q4_1 || type == ENGRAM_Q8_0 || group_type(type); }

void engram_gemv(int type, const void *weights, int64_t rows, int64_t cols, const float *x, float *y,
                 int accumulate, int threads) {
    if (type != ENGRAM_F32) { // blocks: the small product's kernels with one row
        engram_small_gemm(type, weights, rows, cols, x, 1, y, accumulate, threads);
        return;
    }
    run_product((product){ PRODUCT, type, accumulate, 1, weights, rows, cols, 1, x, NULL, y, 0, vector_bits() }, threads);
}

void engram_dequantize(int type, const void *blocks, int64_t rows, int64_t cols, float *out, int threads) {
    if (!block_type(type)) abort(); // callers pass the block types only
    run_product((product){ DEQUANTIZE, type, 0, 1, blocks, rows, cols, 1, NULL, NULL, out, 0, vector_bits() }, threads);
}

void engram_small_gemm(int type, const void *blocks, int64_t rows, int64_t cols, const float *x, int64_t n,
                       float *y, int accumulate, int threads) {
    if (!block_type(type)) abort(); // callers pass the block types only
    float local[1024], *sums = offset_sums(type, x, n, cols, local);
    run_product((product){ SMALL_GEMM, type, accumulate, 1, blocks, rows, cols, n, x, sums, y, 0, vector_bits() }, threads);
    if (sums != local) free(sums);
}

// The transposed X of the vector path of X·Wᵀ: each calling thread keeps its buffer for its next products
// (the value search makes thousands a second, from one or two threads), freed when the thread ends. Without
// a thread key (pthread_key_create failed) each product allocates and frees its own.
static pthread_key_t transposed_key;
static int transposed_key_made;
static pthread_once_t transposed_once = PTHREAD_ONCE_INIT;
static _Thread_local float *transposed;
static _Thread_local int64_t transposed_capacity;

static void free_transposed(void *buffer) {
    free(buffer);
    transposed = NULL;
    transposed_capacity = 0;
}

static void make_transposed_key(void) { transposed_key_made = pthread_key_create(&transposed_key, free_transposed) == 0; }

static float *allocate_floats(int64_t count) { return aligned_alloc(64, (size_t)((count + 15) / 16 * 16) * sizeof(float)); }

// A buffer of at least `count` floats for this thread's product, or NULL if there is no memory for it;
// `release_transposed` after the product.
static float *transposed_buffer(int64_t count) {
    pthread_once(&transposed_once, make_transposed_key);
    if (!transposed_key_made) return allocate_floats(count);
    if (count <= transposed_capacity) return transposed;
    float *grown = allocate_floats(count);
    if (!grown) return NULL;
    if (pthread_setspecific(transposed_key, grown) != 0) { free(grown); return NULL; }
    free(transposed);
    transposed = grown;
    transposed_capacity = count;
    return grown;
}

static void release_transposed(float *buffer) {
    if (!transposed_key_made) free(buffer);
}

void engram_float_gemm_nt(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y, int64_t ldy,
                          int accumulate, int threads) {
    if (n <= 0 || rows <= 0) return;
    int bits = vector_bits();
    float *xt = NULL;
    if (bits >= 512) {
        xt = transposed_buffer(cols * float_nt_lanes(n));
        if (xt) float_nt_transpose(x, n, cols, xt);
        else bits = 0; // the portable loops give the same bits, more slowly
    }
    run_product((product){ FLOAT_NT, ENGRAM_F32, accumulate, 1, w, rows, cols, n, x, NULL, y, ldy, bits, xt }, threads);
    if (xt) release_transposed(xt);
}

void engram_float_gemm_nn(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                          int accumulate, int threads) {
    if (n <= 0 || cols <= 0) return;
    if (rows <= 0) { // an empty sum
        if (!accumulate) memset(dx, 0, sizeof(float) * (size_t)(n * cols));
        return;
    }
    run_product((product){ FLOAT_NN, ENGRAM_F32, accumulate, 1, w, rows, cols, n, dy, NULL, dx, lddy, vector_bits() }, threads);
}

void engram_return_free_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
