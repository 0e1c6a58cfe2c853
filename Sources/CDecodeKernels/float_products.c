// Products of a few rows (tokens) with a float32 weight matrix, as the value search of ROME and MEMIT makes
// them: 10-60 rows per thread against every matrix of the upper layers (and all the labelled rows against
// the output head), forward (Y = X·Wᵀ) and backward (dX = dY·W), at every optimisation step. OpenBLAS
// first copies the whole weight into its packed layout, which pays off when many rows share the copy;
// with this few rows the copy costs as much as the arithmetic (Debian's OpenBLAS 0.3.21 packs with a plain C loop on its AVX-512 cores:
// half of a ROME edit's time went to that copy). These kernels read the weight where it lies, once, in
// tiles that stay in cache while every row passes over them. `BLAS` says up to how many rows they win.
//
// How each element is summed does not depend on n, on the tiles or on the split over threads:
//   X·Wᵀ  one vector accumulator per (row of X, row of W) over the columns in order (the last chunk
//         masked), its lanes added in a fixed order at the end (`sum16`);
//   dY·W  one lane per element of dX, multiply-adds (fused on the AVX-512 path) over W's rows in order,
//         starting from zero or (accumulating) from dX's old value.
// So a token's numbers are the same alone or among others, and a weight done in pieces (`BLAS`'s pieces
// dequantized in turn) gives what it gives in one piece.
#include "float_products.h"
#include "kernel_common.h"

// ---- Portable loops (the reference for the tests; `BLAS` calls OpenBLAS on CPUs without AVX-512) ----

static void nt_rows_portable(const float *w, int64_t cols, const float *x, int64_t n, float *y, int64_t ldy,
                             int64_t begin, int64_t end, int accumulate) {
    for (int64_t i = 0; i < n; i++) {
        for (int64_t o = begin; o < end; o++) {
            float s = 0;
            for (int64_t k = 0; k < cols; k++) s += x[i * cols + k] * w[o * cols + k];
            y[i * ldy + o] = accumulate ? y[i * ldy + o] + s : s;
        }
    }
}

static void nn_cols_portable(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                             int64_t begin, int64_t end, int accumulate) {
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = begin; c < end; c++) {
            float s = accumulate ? dx[i * cols + c] : 0;
            for (int64_t o = 0; o < rows; o++) s += dy[i * lddy + o] * w[o * cols + c];
            dx[i * cols + c] = s;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512_TARGET __attribute__((target("avx512f,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

// W's rows of one dY·W pass: each tile of dX takes this many rows of W (contiguous, 144-384 KiB for this
// model's matrices: in L2, read from memory once and streamed, which the prefetchers follow) before the
// next tile of columns. With every row of W at once a tile would read four cache lines per row at a stride
// of the row length, slowly (the output head has 49152 rows).
#define NN_ROW_CHUNK 64

// Rows of X (or dY) per tile: six, and a remainder of 7-11 as two near-equal tiles, so that no tile is
// much smaller than the others (21 rows: 6, 6, 5, 4).
static inline int tile_rows(int64_t left) {
    if (left >= 12 || left == 6) return 6;
    return left > 6 ? (int)((left + 1) / 2) : (int)left;
}

// ---- AVX-512: 16 lanes, 32 registers ----

// The 16 lanes added in a fixed order: halves, then `horizontal_sum`'s (not `_mm512_reduce_add_ps`, whose
// order the compiler may choose per call site).
AVX512_TARGET INLINE float sum16(__m512 v) {
    __m256 low = _mm512_castps512_ps256(v), high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return horizontal_sum(_mm256_add_ps(low, high));
}

// Y[i ..< i+R, o ..< o+C] for R ≤ 6 rows of X (at x) and C ≤ 4 rows of W (at w): R·C accumulators and the
// C loaded rows of W, at most 28 registers.
AVX512_TARGET INLINE void nt_tile_avx512(const float *w, int64_t cols, const float *x, float *y, int64_t ldy,
                                         const int R, const int C, int accumulate) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
        __m512 wv[4];
        for (int c = 0; c < C; c++) wv[c] = _mm512_loadu_ps(w + c * cols + k);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_loadu_ps(x + r * cols + k);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    if (k < cols) {
        __mmask16 m = (__mmask16)((1u << (cols - k)) - 1);
        __m512 wv[4];
        for (int c = 0; c < C; c++) wv[c] = _mm512_maskz_loadu_ps(m, w + c * cols + k);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + r * cols + k);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < C; c++) {
            float s = sum16(acc[r][c]);
            y[r * ldy + c] = accumulate ? y[r * ldy + c] + s : s;
        }
    }
}

AVX512_TARGET static void nt_rows_avx512(const float *w, int64_t cols, const float *x, int64_t n, float *y,
                                         int64_t ldy, int64_t begin, int64_t end, int accumulate) {
#define TILE(R, C) nt_tile_avx512(w + o * cols, cols, x + i * cols, y + i * ldy + o, ldy, R, C, accumulate)
#define ROWS_OF_X(C) \
    for (int64_t i = 0; i < n;) { \
        int R = tile_rows(n - i); \
        switch (R) { case 1: TILE(1, C); break; case 2: TILE(2, C); break; case 3: TILE(3, C); break; \
                     case 4: TILE(4, C); break; case 5: TILE(5, C); break; default: TILE(6, C); } \
        i += R; \
    }
    int64_t o = begin;
    // Four rows of W (a few KiB) stay in L1 while every row of X passes over them.
    for (; o + 4 <= end; o += 4) ROWS_OF_X(4)
    for (; o < end; o++) ROWS_OF_X(1)
#undef ROWS_OF_X
#undef TILE
}

// dX[i ..< i+R, c ..< c+64] (lanes masked by m[0..3]) for R ≤ 6 rows of dY, over W's rows o0 ..< o1:
// 24 accumulators, the 4 loaded pieces of a row of W and a broadcast value of dY.
AVX512_TARGET INLINE void nn_tile_avx512(const float *w, int64_t cols, const float *dy, int64_t lddy, float *dx,
                                         const __mmask16 *m, int64_t o0, int64_t o1, const int R, int load) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < 4; v++) acc[r][v] = load ? _mm512_maskz_loadu_ps(m[v], dx + r * cols + 16 * v) : _mm512_setzero_ps();
    }
    for (int64_t o = o0; o < o1; o++) {
        __m512 wv[4];
        for (int v = 0; v < 4; v++) wv[v] = _mm512_maskz_loadu_ps(m[v], w + o * cols + 16 * v);
        for (int r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(dy[r * lddy + o]);
            for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(dx + r * cols + 16 * v, m[v], acc[r][v]);
    }
}

AVX512_TARGET static void nn_cols_avx512(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n,
                                         float *dx, int64_t begin, int64_t end, int accumulate) {
    for (int64_t o0 = 0; o0 < rows; o0 += NN_ROW_CHUNK) {
        int64_t o1 = o0 + NN_ROW_CHUNK < rows ? o0 + NN_ROW_CHUNK : rows;
        int load = accumulate || o0 > 0;
        for (int64_t c = begin; c < end; c += FLOAT_NN_COLUMN_TILE) {
            __mmask16 m[4];
            for (int v = 0; v < 4; v++) {
                int64_t left = end - c - 16 * v;
                m[v] = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            }
#define TILE(R) nn_tile_avx512(w + c, cols, dy + i * lddy, lddy, dx + i * cols + c, m, o0, o1, R, load)
            for (int64_t i = 0; i < n;) {
                int R = tile_rows(n - i);
                switch (R) {
                case 1: TILE(1); break; case 2: TILE(2); break; case 3: TILE(3); break;
                case 4: TILE(4); break; case 5: TILE(5); break; default: TILE(6);
                }
                i += R;
            }
#undef TILE
        }
    }
}

#endif

void float_gemm_nt_rows(const float *w, int64_t cols, const float *x, int64_t n, float *y, int64_t ldy,
                        int64_t begin, int64_t end, int accumulate, int avx512) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx512) { nt_rows_avx512(w, cols, x, n, y, ldy, begin, end, accumulate); return; }
#endif
    nt_rows_portable(w, cols, x, n, y, ldy, begin, end, accumulate);
}

void float_gemm_nn_cols(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                        int64_t begin, int64_t end, int accumulate, int avx512) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx512) { nn_cols_avx512(w, rows, cols, dy, lddy, n, dx, begin, end, accumulate); return; }
#endif
    nn_cols_portable(w, rows, cols, dy, lddy, n, dx, begin, end, accumulate);
}
