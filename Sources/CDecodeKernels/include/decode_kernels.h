#ifndef ENGRAM_DECODE_KERNELS_H
#define ENGRAM_DECODE_KERNELS_H

#include <stdint.h>

/// Matrix-vector products for one-token decoding, where the cost is reading the weights: these read
/// GGML-quantized blocks directly (a Q4_1 row is a seventh of its float32 copy) or float32 rows.
/// `weights` holds `rows` rows of `cols / 32` blocks each (`cols` a multiple of 32); for the rows
/// `begin ..< end`, `y[r] = Σ_c W[r, c] · x[c]` (plus the old `y[r]` when `accumulate` is non-zero). `block_sums[b]` is the sum of `x[32b ..< 32b + 32]`
/// (Q4_1's per-block offset multiplies it). Results equal the products over the dequantized
/// weights up to float rounding (sums are taken in another order).
void engram_gemv_q4_1(const void *weights, int64_t cols, const float *x, const float *block_sums,
                      float *y, int64_t begin, int64_t end, int accumulate);
void engram_gemv_q8_0(const void *weights, int64_t cols, const float *x, float *y, int64_t begin, int64_t end,
                      int accumulate);

/// The same product over float32 rows (`cols` any); OpenBLAS's sgemv wakes its threads per call, which
/// costs about as much as a decoding step's small products themselves.
void engram_gemv_f32(const float *weights, int64_t cols, const float *x, float *y, int64_t begin, int64_t end,
                     int accumulate);

/// Weight types for `engram_gemv` (GGML's type numbers).
enum { ENGRAM_F32 = 0, ENGRAM_Q4_1 = 3, ENGRAM_Q8_0 = 8 };

/// All rows of a product, split over `threads` threads: the calling thread and `threads − 1` pool
/// workers that wait for work spinning briefly, then asleep. Small products, and products asked for
/// while another thread is using the pool, run on the calling thread alone.
void engram_gemv(int type, const void *weights, int64_t rows, int64_t cols, const float *x, const float *block_sums,
                 float *y, int accumulate, int threads);

/// 1 when the AVX2/FMA/F16C paths run, 0 when the portable loops do.
int engram_decode_kernels_vectorized(void);
/// Chooses the portable loops (0) or, where the CPU has them, the vector paths (non-zero); for tests.
void engram_decode_kernels_set_vectorized(int enabled);

#endif
