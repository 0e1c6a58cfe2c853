// Internal to CDecodeKernels: products of a few rows with a float32 weight matrix, read where it lies
// (no packed copy of the weight). See float_products.c.
#ifndef ENGRAM_FLOAT_PRODUCTS_H
#define ENGRAM_FLOAT_PRODUCTS_H

#include <stdint.h>

/// Columns of dX per tile of `float_gemm_nn_cols` (its callers split work over threads in these units).
#define FLOAT_NN_COLUMN_TILE 64

/// Rows of the transposed X that the AVX-512 path of `float_gemm_nt_rows` reads: n rounded up to a
/// multiple of 16 (its rows of X lie across the 16 lanes).
int64_t float_nt_lanes(int64_t n);

/// XT[cols, float_nt_lanes(n)] = X[n, cols]ᵀ, the rows beyond n zero.
void float_nt_transpose(const float *x, int64_t n, int64_t cols, float *xt);

/// Columns `begin ..< end` of Y[n, ldy] (+)= X[n, cols] · Wᵀ for W[rows, cols] (those columns are W's rows
/// `begin ..< end`). `avx512` chooses the AVX-512 path (the CPU must have AVX-512 F), which reads X as
/// `xt` (`float_nt_transpose`), over the portable loops, which read `x`.
void float_gemm_nt_rows(const float *w, int64_t cols, const float *x, const float *xt, int64_t n, float *y, int64_t ldy,
                        int64_t begin, int64_t end, int accumulate, int avx512);

/// Columns `begin ..< end` of DX[n, cols] (+)= DY[n, rows] · W for W[rows, cols] (DY's leading dimension
/// `lddy`, at least rows).
void float_gemm_nn_cols(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                        int64_t begin, int64_t end, int accumulate, int avx512);

#endif
