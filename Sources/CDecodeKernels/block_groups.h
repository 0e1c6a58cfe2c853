// Internal to CDecodeKernels: the stored types other than F32, Q4_1 and Q8_0 (which have hand-written
// kernels in decode_kernels.c), read as groups of 32 values. See block_groups.c.
#ifndef ENGRAM_BLOCK_GROUPS_H
#define ENGRAM_BLOCK_GROUPS_H

#include <stdint.h>

/// Whether `type` is one of the grouped types (F16, BF16, Q4_0, Q5_0, Q5_1, Q2_K … Q6_K, IQ4_NL, IQ4_XS).
int group_type(int type);
/// Whether its values carry an offset (value = scale · q + offset): then products need `sums16`.
int group_type_has_offset(int type);

/// Rows `begin ..< end` of Y[n, rows] (leading dimension `ldy`) = X[n, cols] · Wᵀ; `sums16[k · cols/16 + i]`
/// is the sum of x row k over values 16i ..< 16i + 16 (types with an offset only). Each element of Y is
/// formed the same way whatever n is.
void group_gemm_rows(int type, const void *weights, int64_t cols, const float *x, const float *sums16, int64_t n,
                     float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate, int vectorized);

/// Rows `begin ..< end` as float32 (row r at out + r · cols): scale · q (+ offset), two roundings, the
/// same floats on either path.
void group_dequantize_rows(int type, const void *weights, int64_t cols, float *out, int64_t begin, int64_t end,
                           int vectorized);

#endif
