#ifndef ENGRAM_DECODE_KERNELS_H
#define ENGRAM_DECODE_KERNELS_H

#include <stdint.h>

/// Matrix-vector products for one-token decoding, where the cost is reading the weights: they read
/// GGML-quantized blocks directly (a Q4_1 row is a seventh of its float32 copy) or float32 rows.
/// Results equal the products over the dequantized weights up to float rounding (sums are taken in
/// another order).

/// Weight types (GGML's type numbers): float rows, and the stored types, whose rows are whole blocks of
/// 32 values (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, and F16/BF16 rows, taken 32 values at a time) or 256
/// (the K types, IQ4_XS).
enum {
    ENGRAM_F32 = 0, ENGRAM_F16 = 1, ENGRAM_BF16 = 30, ENGRAM_Q4_0 = 2, ENGRAM_Q4_1 = 3, ENGRAM_Q5_0 = 6, ENGRAM_Q5_1 = 7, ENGRAM_Q8_0 = 8,
    ENGRAM_Q2_K = 10, ENGRAM_Q3_K = 11, ENGRAM_Q4_K = 12, ENGRAM_Q5_K = 13, ENGRAM_Q6_K = 14,
    ENGRAM_IQ4_NL = 20, ENGRAM_IQ4_XS = 23
};

/// `y[r] = Σ_c W[r, c] · x[c]` for every row (plus the old `y[r]` when `accumulate` is non-zero).
/// `weights` holds `rows` rows: of `cols` floats for F32, else of blocks (a block type's product is
/// `engram_small_gemm` with one row). The rows are split over `threads` threads: the calling thread and
/// `threads − 1` pool workers that wait for work spinning briefly, then asleep. Small products, and
/// products asked for while another thread is using the pool, run on the calling thread alone.
void engram_gemv(int type, const void *weights, int64_t rows, int64_t cols, const float *x, float *y,
                 int accumulate, int threads);

/// The `rows` rows of blocks as float32 into `out` (`rows · cols` floats, row-major): the same values as
/// multiplying each scale and adding each offset in float32 (gguf-py's and Swift's `Dequantize`). Split
/// over threads like `engram_gemv`.
void engram_dequantize(int type, const void *blocks, int64_t rows, int64_t cols, float *out, int threads);

/// `Y[n, rows] = X[n, cols] · Wᵀ` (plus the old Y when `accumulate`) for W in blocks, X and
/// Y row-major, for a few rows of X: the blocks are read from memory once for all of them (as one decoding
/// step reads them; slices stay in cache while every row of X passes over them), and every element of Y is exactly what `engram_gemv` gives for that row of X alone, so a token's
/// numbers do not depend on the other tokens of its pass or on how the rows are split over threads.
void engram_small_gemm(int type, const void *blocks, int64_t rows, int64_t cols, const float *x, int64_t n,
                       float *y, int accumulate, int threads);

/// `Y[n, 0 ..< rows] = X[n, cols] · Wᵀ` (plus the old values when `accumulate`) for a float32 weight
/// W[rows, cols], X row-major, Y's leading dimension `ldy`; split over threads by rows of W. For a few rows
/// of X (the value search's 10-130 per thread): the weight is read where it lies, not copied into a packed
/// layout as sgemm does (X is, transposed, into a buffer the calling thread keeps). Each element is the
/// fused multiply-adds over the columns in order, from zero (then added to the old value when
/// `accumulate`), whatever n and the split.
void engram_float_gemm_nt(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y, int64_t ldy,
                          int accumulate, int threads);

/// `dX[n, cols] = dY[n, rows] · W` (plus the old dX when `accumulate`) for a float32 weight W[rows, cols],
/// dY's leading dimension `lddy`; split over threads by columns. Each element is the fused multiply-adds over
/// W's rows in order, from zero or from the old value: a weight done in consecutive pieces of rows, the later
/// ones accumulating, gives exactly what it gives in one call.
void engram_float_gemm_nn(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                          int accumulate, int threads);

/// 1 when those two run their AVX-512 path (the CPU has AVX-512 F and the kernels' width is 512), 0 when
/// the portable loops would (`BLAS` then uses OpenBLAS instead).
int engram_float_products_vectorized(void);

/// The widest float vectors this x86-64 CPU has: 512 (AVX-512 F, BW, DQ and VL), 256 (AVX2 with FMA), else
/// 0 (also on other CPUs). Tells whether OpenBLAS chose a core below the CPU (`BLAS.coreAdvice`).
int engram_cpu_vector_bits(void);

/// Gives the pages of freed heap memory back to the system (glibc's malloc_trim; nothing elsewhere):
/// after float copies of weights are dropped, which glibc would otherwise keep for reuse.
void engram_return_free_memory(void);

/// 1 when the vector paths (AVX2/FMA/F16C, and AVX-512 where the CPU has it) run, 0 when the portable loops do.
int engram_decode_kernels_vectorized(void);
/// The widest vectors the kernels use: 512, 256 (AVX2 paths only) or 0 (portable loops).
int engram_decode_kernels_vector_bits(void);
/// Chooses the portable loops (0) or, where the CPU has them, the vector paths (non-zero); for tests.
void engram_decode_kernels_set_vectorized(int enabled);
/// Caps the vectors the kernels use at `bits` (512, 256 or 0), within what the CPU has; for tests, which
/// check the AVX2 paths on an AVX-512 CPU too. 256 leaves the few-row float products to OpenBLAS.
void engram_decode_kernels_set_vector_bits(int bits);

#endif
