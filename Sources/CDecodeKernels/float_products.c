// Products of a few rows (tokens) with a float32 weight matrix, as the value search of ROME and MEMIT makes
// them: 10-130 rows per thread against every matrix of the upper layers (and all the labelled rows against
// the output head), forward (Y = X·Wᵀ) and backward (dX = dY·W), at every optimisation step. OpenBLAS
// first copies the whole weight into its packed layout, which pays off when many rows share the copy;
// with this few rows the copy costs as much as the arithmetic (Debian's OpenBLAS 0.3.21 packs with a
// plain C loop on its AVX-512 cores: half of a ROME edit's time went to that copy). These kernels read the
// weight where it lies, once, in tiles that stay in cache while every row passes over them, and ask for
// the next tile's lines ahead of use (software prefetch): the weights come from memory at every product,
// and waiting for them, not the arithmetic, was what held both kernels back below ~40 rows per thread.
// `BLAS` says up to how many rows they win.
//
// How each element is summed does not depend on n, on the tiles or on the split over threads:
//   X·Wᵀ  one lane per element of Y: fused multiply-adds over the columns in order, from zero (then added
//         to Y's old value when accumulating). The rows of X lie across the lanes (X is transposed first,
//         padded with zero rows to a multiple of 16), each element of W broadcast: no sums across lanes.
//   dY·W  one lane per element of dX: fused multiply-adds over W's rows in order, starting from zero or
//         (accumulating) from dX's old value.
// The portable loops make the same fused multiply-adds in the same order (`fmaf`), so both paths give
// the same bits; a token's numbers are the same alone or among others, and a weight done in pieces
// (`BLAS`'s pieces dequantized in turn) gives what it gives in one piece.
#include <math.h>
#include <stdlib.h>
#include "float_products.h"
#include "kernel_common.h"

// ---- Portable loops (the reference for the tests; `BLAS` calls OpenBLAS on CPUs without AVX-512) ----

static void nt_rows_portable(const float *w, int64_t cols, const float *x, int64_t n, float *y, int64_t ldy,
                             int64_t begin, int64_t end, int accumulate) {
    for (int64_t i = 0; i < n; i++) {
        for (int64_t o = begin; o < end; o++) {
            float s = 0;
            for (int64_t k = 0; k < cols; k++) s = fmaf(w[o * cols + k], x[i * cols + k], s);
            y[i * ldy + o] = accumulate ? y[i * ldy + o] + s : s;
        }
    }
}

static void nn_cols_portable(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                             int64_t begin, int64_t end, int accumulate) {
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = begin; c < end; c++) {
            float s = accumulate ? dx[i * cols + c] : 0;
            for (int64_t o = 0; o < rows; o++) s = fmaf(dy[i * lddy + o], w[o * cols + c], s);
            dx[i * cols + c] = s;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512_TARGET __attribute__((target("avx512f,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

// W's rows of one dY·W pass: each tile of dX takes this many rows of W (contiguous, 144-384 KiB for this
// model's matrices: in L2) before the next tile of columns; the first tile of rows of dY asks for the next
// chunk's lines as it goes. With every row of W at once a tile would read four cache lines per row at a
// stride of the row length, slowly (the output head has 49152 rows).
#define NN_ROW_CHUNK 64

// Rows of dY per tile: six, and a remainder of 7-11 as two near-equal tiles, so that no tile is much
// smaller than the others (21 rows: 6, 6, 5, 4).
static inline int tile_rows(int64_t left) {
    if (left >= 12 || left == 6) return 6;
    return left > 6 ? (int)((left + 1) / 2) : (int)left;
}

// ---- AVX-512: 16 lanes, 32 registers ----

// X·Wᵀ for OT rows of W (at w) and RV vectors of 16 rows of X (Xᵀ at xt, lanes apart): OT·RV accumulators
// (at most 24) and RV loaded vectors of Xᵀ; each element of W is broadcast. The result goes to out (one
// row of 64 per row of W) for the caller to write into Y. `next`, if not NULL, is the next tile's rows of
// W: one line of each is asked for every 16 columns.
AVX512_TARGET INLINE void nt_tile_avx512(const float *w, int64_t cols, const float *xt, int64_t lanes, float *out,
                                         const int OT, const int RV, const float *next) {
    __m512 acc[12][4];
    for (int i = 0; i < OT; i++) for (int v = 0; v < RV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < cols; k++) {
        if (next && (k & 15) == 0) {
            for (int i = 0; i < OT; i++) _mm_prefetch((const char *)(next + i * cols + k), _MM_HINT_T0);
        }
        __m512 xv[4];
        for (int v = 0; v < RV; v++) xv[v] = _mm512_loadu_ps(xt + k * lanes + 16 * v);
        for (int i = 0; i < OT; i++) {
            __m512 b = _mm512_set1_ps(w[i * cols + k]);
            for (int v = 0; v < RV; v++) acc[i][v] = _mm512_fmadd_ps(b, xv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < OT; i++) for (int v = 0; v < RV; v++) _mm512_storeu_ps(out + i * 64 + 16 * v, acc[i][v]);
}

// Rows of W per tile for the widest group's vectors of rows of X: 24 accumulators for three or four
// vectors, 16 for two (12 rows were slower), 12 for one.
static inline int nt_tile_height(int vectors) { return vectors == 4 ? 6 : vectors == 1 ? 12 : 8; }

// Rows of W whose results are gathered before they are written to Y: 48 (a multiple of every tile height)
// makes 192 contiguous bytes per row of Y. Written tile by tile, a tile of 6-12 columns would touch one
// line of every row of Y, each in another page when Y is as wide as the output head (49152 columns).
#define NT_BLOCK 48

// The rows of X go in groups of at most four vectors (64 rows), of near-equal size; each block of W's rows
// passes over every group while it is in L2, the first group asking for each next tile's rows.
AVX512_TARGET static void nt_rows_avx512(const float *w, int64_t cols, const float *xt, int64_t n, float *y,
                                         int64_t ldy, int64_t begin, int64_t end, int accumulate) {
    int64_t lanes = float_nt_lanes(n), vectors = lanes / 16, groups = (vectors + 3) / 4;
    int height = nt_tile_height((int)((vectors + groups - 1) / groups));
    float out[NT_BLOCK * 64];
    for (int64_t b = begin; b < end; b += NT_BLOCK) {
        int64_t b1 = b + NT_BLOCK < end ? b + NT_BLOCK : end;
        for (int64_t g = 0; g < groups; g++) {
            int64_t v0 = vectors * g / groups, v1 = vectors * (g + 1) / groups;
            for (int64_t o = b; o < b1;) {
                int OT = o + height <= b1 ? height : 1; // a tail of W's rows goes one at a time
                const float *next = g == 0 && o + 2 * OT <= end ? w + (o + OT) * cols : NULL;
#define TILE(H, V) nt_tile_avx512(w + o * cols, cols, xt + 16 * v0, lanes, out + (o - b) * 64, H, V, next)
                // Every (width, height) a group meets: it is the widest or one vector narrower, so
                // (1, 12), (2, 8), (3, 8), (3, 6), (4, 6), and height 1 for a tail.
                int shape = (int)(v1 - v0) * 100 + OT;
                switch (shape) {
                case 101: TILE(1, 1); break;
                case 112: TILE(12, 1); break;
                case 201: TILE(1, 2); break;
                case 208: TILE(8, 2); break;
                case 301: TILE(1, 3); break;
                case 306: TILE(6, 3); break;
                case 308: TILE(8, 3); break;
                case 401: TILE(1, 4); break;
                case 406: TILE(6, 4); break;
                default: abort(); // a new tile height without its case would write past `out`
                }
#undef TILE
                o += OT;
            }
            int64_t r1 = 16 * v1 < n ? 16 * v1 : n;
            for (int64_t r = 16 * v0; r < r1; r++) {
                float *row = y + r * ldy;
                for (int64_t o = b; o < b1; o++) {
                    float s = out[(o - b) * 64 + r - 16 * v0];
                    row[o] = accumulate ? row[o] + s : s;
                }
            }
        }
    }
}

// dX[i ..< i+R, c ..< c+64] (lanes masked by m[0..3]) for R ≤ 6 rows of dY, over W's rows o0 ..< o1:
// 24 accumulators, the 4 loaded pieces of a row of W and a broadcast value of dY. With `ahead` > 0, the
// same columns of W's row o + `ahead` are asked for along with row o, up to W's row `rows`.
AVX512_TARGET INLINE void nn_tile_avx512(const float *w, int64_t cols, const float *dy, int64_t lddy, float *dx,
                                         const __mmask16 *m, int64_t o0, int64_t o1, const int R, int load,
                                         int64_t ahead, int64_t rows) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < 4; v++) acc[r][v] = load ? _mm512_maskz_loadu_ps(m[v], dx + r * cols + 16 * v) : _mm512_setzero_ps();
    }
    for (int64_t o = o0; o < o1; o++) {
        if (ahead && o + ahead < rows) {
            for (int v = 0; v < 4; v++) if (m[v]) _mm_prefetch((const char *)(w + (o + ahead) * cols + 16 * v), _MM_HINT_T0);
        }
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
            // The first tile of rows of dY asks for the next chunk's rows of W.
#define TILE(R) nn_tile_avx512(w + c, cols, dy + i * lddy, lddy, dx + i * cols + c, m, o0, o1, R, load, \
                               i == 0 ? NN_ROW_CHUNK : 0, rows)
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

int64_t float_nt_lanes(int64_t n) { return (n + 15) / 16 * 16; }

void float_nt_transpose(const float *x, int64_t n, int64_t cols, float *xt) {
    int64_t lanes = float_nt_lanes(n);
    for (int64_t k = 0; k < cols; k++) {
        for (int64_t r = 0; r < n; r++) xt[k * lanes + r] = x[r * cols + k];
        for (int64_t r = n; r < lanes; r++) xt[k * lanes + r] = 0;
    }
}

void float_gemm_nt_rows(const float *w, int64_t cols, const float *x, const float *xt, int64_t n, float *y, int64_t ldy,
                        int64_t begin, int64_t end, int accumulate, int avx512) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx512) { nt_rows_avx512(w, cols, xt, n, y, ldy, begin, end, accumulate); return; }
#endif
    (void)xt;
    nt_rows_portable(w, cols, x, n, y, ldy, begin, end, accumulate);
}

void float_gemm_nn_cols(const float *w, int64_t rows, int64_t cols, const float *dy, int64_t lddy, int64_t n, float *dx,
                        int64_t begin, int64_t end, int accumulate, int avx512) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx512) { nn_cols_avx512(w, rows, cols, dy, lddy, n, dx, begin, end, accumulate); return; }
#endif
    nn_cols_portable(w, rows, cols, dy, lddy, n, dx, begin, end, accumulate);
}
