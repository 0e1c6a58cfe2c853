// The GGML block types other than Q4_1 and Q8_0 (layouts from ggml-common.h), read as groups of 32
// values: each group unpacks to 32 small integers q (they all fit a signed byte) and, for each half
// of 16 values, a scale and an offset, value = scale · q + offset. Every type is then one unpacking
// step and the same products:
//   Q4_0, Q5_0, Q5_1  one group per 32-value block: scale d (offset m for Q5_1);
//   Q4_K, Q5_K        eight groups per 256-value block, each with its 6-bit scale and min;
//   Q6_K, Q2_K, Q3_K  sixteen scales per 256-value block, one per 16 values;
//   IQ4_NL, IQ4_XS    nibbles that index a fixed table of 16 integers: one scale per 32-value block
//                     (IQ4_NL), or a 6-bit sub-scale per 32 values of a 256-value block (IQ4_XS);
//   F16, BF16         rows of 16-bit floats, 32 values (64 bytes) taken as a block with scale 1: their
//                     values are floats already, so they are converted, not unpacked to integers.
// A product's sum for one output is Σ over groups of scale₀ · Σ q·x (first half) + scale₁ · Σ q·x
// (second half) + offsets · Σ x, so it equals the product over the dequantized floats up to rounding.
// The unpacking is plain C inlined into an AVX2-targeted loop, where the compiler vectorises it.
#include "block_groups.h"
#include "kernel_common.h"
#include "decode_kernels.h"

// Dequantized values must be the separate multiply and add that gguf-py and Swift's Dequantize compute.
#pragma STDC FP_CONTRACT OFF

typedef struct {
    int8_t q[32];
    float scale[2], offset[2];
} group32;

int group_type(int type) {
    switch (type) {
    case ENGRAM_F16: case ENGRAM_BF16: case ENGRAM_Q4_0: case ENGRAM_Q5_0: case ENGRAM_Q5_1: case ENGRAM_IQ4_NL: case ENGRAM_IQ4_XS:
    case ENGRAM_Q2_K: case ENGRAM_Q3_K: case ENGRAM_Q4_K: case ENGRAM_Q5_K: case ENGRAM_Q6_K: return 1;
    default: return 0;
    }
}

int group_type_has_offset(int type) {
    return type == ENGRAM_Q5_1 || type == ENGRAM_Q4_K || type == ENGRAM_Q5_K || type == ENGRAM_Q2_K;
}

// Whether the two halves of a group have scales of their own (the types with one per 16 values).
static inline __attribute__((always_inline)) int two_scales(int type) {
    return type == ENGRAM_Q6_K || type == ENGRAM_Q2_K || type == ENGRAM_Q3_K;
}

// Rows of 16-bit floats rather than integer blocks.
static inline __attribute__((always_inline)) int float_rows(int type) { return type == ENGRAM_F16 || type == ENGRAM_BF16; }

static inline __attribute__((always_inline)) int block_values(int type) {
    return float_rows(type) || type == ENGRAM_Q4_0 || type == ENGRAM_Q5_0 || type == ENGRAM_Q5_1 || type == ENGRAM_IQ4_NL ? 32 : 256;
}

static inline __attribute__((always_inline)) int block_bytes(int type) {
    switch (type) {
    case ENGRAM_F16: case ENGRAM_BF16: return 64;
    case ENGRAM_Q4_0: case ENGRAM_IQ4_NL: return 18;
    case ENGRAM_IQ4_XS: return 136;
    case ENGRAM_Q5_0: return 22;
    case ENGRAM_Q5_1: return 24;
    case ENGRAM_Q2_K: return 84;
    case ENGRAM_Q3_K: return 110;
    case ENGRAM_Q4_K: return 144;
    case ENGRAM_Q5_K: return 176;
    default: return 210; // Q6_K
    }
}

// The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K, packed in 12 bytes.
static inline __attribute__((always_inline)) void scale_min_k4(int j, const uint8_t *s, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// The 6-bit scale j (0..15) of Q3_K: a nibble of byte j % 8 (low for j < 8), two bits of byte 8 + j % 4.
static inline __attribute__((always_inline)) int scale_k3(int j, const uint8_t *s) {
    int low = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
    return low | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

// The 16 values an IQ4 nibble selects (ggml's kvalues_iq4nl: a non-uniform grid, denser near zero).
static const int8_t iq4_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

// The 6-bit sub-scale of 32-value group g of an IQ4_XS block: a nibble of scales_l[g / 2] (low for even
// g) and two bits of the 16-bit scales_h, at 2g. Stored offset by 32.
static inline __attribute__((always_inline)) int scale_iq4_xs(int g, const uint8_t *b) {
    const int high = (b[2] | b[3] << 8) >> (2 * g) & 3;
    return ((b[4 + g / 2] >> (4 * (g % 2))) & 0x0F) | high << 4;
}

// Value l of 32 stored 16-bit floats at b (F16 or BF16), exactly.
static inline __attribute__((always_inline)) float stored_float(int type, const uint8_t *b, int l) {
    if (type == ENGRAM_F16) return half_to_float(b + 2 * l);
    uint32_t bits = (uint32_t)(b[2 * l] | b[2 * l + 1] << 8) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Group g of the block at b (an integer block type). `type` is a constant wherever this is inlined, so
// the switch folds away.
static inline __attribute__((always_inline)) void unpack(int type, const uint8_t *b, int g, group32 *o) {
    o->offset[0] = o->offset[1] = 0;
    switch (type) {
    case ENGRAM_Q4_0: {
        const float d = half_to_float(b);
        for (int l = 0; l < 16; l++) {
            o->q[l] = (int8_t)((b[2 + l] & 0x0F) - 8);
            o->q[l + 16] = (int8_t)((b[2 + l] >> 4) - 8);
        }
        o->scale[0] = o->scale[1] = d;
        return;
    }
    case ENGRAM_Q5_0:
    case ENGRAM_Q5_1: {
        // Bit l of the 32-bit qh is the fifth bit of value l.
        const int with_min = type == ENGRAM_Q5_1;
        const uint8_t *qh = b + (with_min ? 4 : 2), *qs = b + (with_min ? 8 : 6);
        const int bias = with_min ? 0 : 16;
        for (int l = 0; l < 16; l++) {
            o->q[l] = (int8_t)(((qs[l] & 0x0F) | ((qh[l / 8] >> (l % 8)) & 1) << 4) - bias);
            o->q[l + 16] = (int8_t)(((qs[l] >> 4) | ((qh[2 + l / 8] >> (l % 8)) & 1) << 4) - bias);
        }
        o->scale[0] = o->scale[1] = half_to_float(b);
        if (with_min) o->offset[0] = o->offset[1] = half_to_float(b + 2);
        return;
    }
    case ENGRAM_Q4_K:
    case ENGRAM_Q5_K: {
        // Group g reads the low (g even) or high (g odd) nibbles of 32 bytes; Q5_K's fifth bit is bit g of qh[l].
        const int five = type == ENGRAM_Q5_K;
        const uint8_t *qs = b + (five ? 48 : 16) + 32 * (g / 2), *qh = b + 16;
        const int shift = 4 * (g & 1);
        for (int l = 0; l < 32; l++) {
            int q = (qs[l] >> shift) & 0x0F;
            if (five) q |= ((qh[l] >> g) & 1) << 4;
            o->q[l] = (int8_t)q;
        }
        int scale, min;
        scale_min_k4(g, b + 4, &scale, &min);
        o->scale[0] = o->scale[1] = half_to_float(b) * (float)scale;
        o->offset[0] = o->offset[1] = -(half_to_float(b + 2) * (float)min);
        return;
    }
    case ENGRAM_Q6_K: {
        // Half n of 128 values, quarter t of it: four bits of ql (low nibbles for t < 2), two of qh.
        const int n = g / 4, t = g % 4;
        const uint8_t *ql = b + 64 * n + 32 * (t & 1), *qh = b + 128 + 32 * n;
        const int8_t *scales = (const int8_t *)(b + 192 + 8 * n);
        const int shift = t < 2 ? 0 : 4;
        for (int l = 0; l < 32; l++) o->q[l] = (int8_t)((((ql[l] >> shift) & 0x0F) | ((qh[l] >> (2 * t)) & 3) << 4) - 32);
        const float d = half_to_float(b + 208);
        o->scale[0] = d * (float)scales[2 * t];
        o->scale[1] = d * (float)scales[2 * t + 1];
        return;
    }
    case ENGRAM_Q2_K: {
        // Half `part` of 128 values reads its 32 qs bytes four times, two bits further each time.
        const int part = g / 4, shift = g % 4;
        const uint8_t *qs = b + 16 + 32 * part;
        for (int l = 0; l < 32; l++) o->q[l] = (int8_t)((qs[l] >> (2 * shift)) & 3);
        const float d = half_to_float(b + 80), dmin = half_to_float(b + 82);
        for (int h = 0; h < 2; h++) {
            const uint8_t sc = b[8 * part + 2 * shift + h]; // scale: low nibble, min: high nibble
            o->scale[h] = d * (float)(sc & 0x0F);
            o->offset[h] = -(dmin * (float)(sc >> 4));
        }
        return;
    }
    case ENGRAM_IQ4_NL:
    case ENGRAM_IQ4_XS: {
        // 16 bytes per 32 values: low nibbles are values 0-15, high nibbles 16-31, each an index into the table.
        const int xs = type == ENGRAM_IQ4_XS;
        const uint8_t *qs = xs ? b + 8 + 16 * g : b + 2;
        for (int l = 0; l < 16; l++) {
            o->q[l] = iq4_values[qs[l] & 0x0F];
            o->q[l + 16] = iq4_values[qs[l] >> 4];
        }
        o->scale[0] = o->scale[1] = xs ? half_to_float(b) * (float)(scale_iq4_xs(g, b) - 32) : half_to_float(b);
        return;
    }
    default: { // Q3_K: as Q2_K with a third bit from hmask (clear: 4 lower) and 6-bit scales offset by 32
        const int part = g / 4, shift = g % 4, bit = 4 * part + shift;
        const uint8_t *qs = b + 32 + 32 * part;
        for (int l = 0; l < 32; l++) o->q[l] = (int8_t)(((qs[l] >> (2 * shift)) & 3) - (((b[l] >> bit) & 1) ? 0 : 4));
        const float d = half_to_float(b + 108);
        for (int h = 0; h < 2; h++) o->scale[h] = d * (float)(scale_k3(8 * part + 2 * shift + h, b + 96) - 32);
        return;
    }
    }
}

static inline __attribute__((always_inline)) void dequantize_portable(int type, const uint8_t *weights, int64_t cols, float *out, int64_t begin, int64_t end) {
    const int values = block_values(type), bytes = block_bytes(type), offset = group_type_has_offset(type);
    const int64_t nb = cols / values;
    group32 group;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = weights + r * nb * bytes;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += bytes) {
            for (int g = 0; g < values / 32; g++, y += 32) {
                if (float_rows(type)) {
                    for (int l = 0; l < 32; l++) y[l] = stored_float(type, block, l);
                    continue;
                }
                unpack(type, block, g, &group);
                for (int l = 0; l < 32; l++) {
                    float v = group.scale[l / 16] * (float)group.q[l];
                    y[l] = offset ? v + group.offset[l / 16] : v; // no offset: keeps a zero's sign, as d · q does
                }
            }
        }
    }
}

// The portable product: one row of x at a time, each group unpacked for it.
static inline __attribute__((always_inline)) void gemm_portable(
    int type, const uint8_t *w, int64_t cols, const float *x, const float *sums16, int64_t n, float *y, int64_t ldy,
    int64_t begin, int64_t end, int accumulate) {
    const int values = block_values(type), bytes = block_bytes(type), offset = group_type_has_offset(type);
    const int64_t nb = cols / values;
    group32 group;
    for (int64_t r = begin; r < end; r++) {
        for (int64_t k = 0; k < n; k++) {
            const float *xk = x + k * cols, *sk = offset ? sums16 + k * (cols / 16) : NULL;
            const uint8_t *block = w + r * nb * bytes;
            float total = 0;
            for (int64_t b = 0; b < nb; b++, block += bytes) {
                for (int g = 0; g < values / 32; g++) {
                    const int64_t at = b * values + 32 * g;
                    float lo = 0, hi = 0;
                    if (float_rows(type)) {
                        for (int l = 0; l < 16; l++) lo += stored_float(type, block, l) * xk[at + l];
                        for (int l = 16; l < 32; l++) hi += stored_float(type, block, l) * xk[at + l];
                        total += lo + hi;
                        continue;
                    }
                    unpack(type, block, g, &group);
                    for (int l = 0; l < 16; l++) lo += (float)group.q[l] * xk[at + l];
                    for (int l = 16; l < 32; l++) hi += (float)group.q[l] * xk[at + l];
                    total += group.scale[0] * lo + group.scale[1] * hi;
                    if (offset) total += group.offset[0] * sk[at / 16] + group.offset[1] * sk[at / 16 + 1];
                }
            }
            float *out = y + k * ldy + r;
            *out = accumulate ? *out + total : total;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The 32 values of group g as signed bytes, unpacked with vector instructions for the types of the common
// llama.cpp mixes (Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS); the other types through the plain loop. Scales and
// offsets go to `o` either way.
VECTOR_TARGET static inline __attribute__((always_inline)) __m256i unpack_avx2(int type, const uint8_t *b, int g, group32 *o) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (type) {
    case ENGRAM_Q4_0:
    case ENGRAM_Q5_0:
    case ENGRAM_Q5_1: {
        const int with_min = type == ENGRAM_Q5_1, five = type != ENGRAM_Q4_0;
        const uint8_t *qs = b + (with_min ? 8 : five ? 6 : 2);
        const __m128i packed = _mm_loadu_si128((const __m128i *)qs);
        // Values 0-15 are the low nibbles, 16-31 the high ones.
        __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
        if (five) {
            // Byte l takes bit l of qh: spread qh's byte l / 8 over bytes l, then test each byte's own bit.
            uint32_t qh;
            memcpy(&qh, b + (with_min ? 4 : 2), 4);
            const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
            const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
            const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
            q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
        }
        if (!with_min) q = _mm256_sub_epi8(q, _mm256_set1_epi8(five ? 16 : 8));
        o->scale[0] = o->scale[1] = half_f16c(b);
        o->offset[0] = o->offset[1] = with_min ? half_f16c(b + 2) : 0;
        return q;
    }
    case ENGRAM_Q4_K:
    case ENGRAM_Q5_K: {
        const int five = type == ENGRAM_Q5_K;
        const __m256i packed = _mm256_loadu_si256((const __m256i *)(b + (five ? 48 : 16) + 32 * (g / 2)));
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(packed, 4 * (g & 1)), low4);
        if (five) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
            const __m256i fifth = _mm256_and_si256(_mm256_srli_epi16(qh, g), _mm256_set1_epi8(1));
            q = _mm256_or_si256(q, _mm256_slli_epi16(fifth, 4));
        }
        int scale, min;
        scale_min_k4(g, b + 4, &scale, &min);
        o->scale[0] = o->scale[1] = half_f16c(b) * (float)scale;
        o->offset[0] = o->offset[1] = -(half_f16c(b + 2) * (float)min);
        return q;
    }
    case ENGRAM_Q6_K: {
        const int n = g / 4, t = g % 4;
        const __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * n + 32 * (t & 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n));
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(ql, t < 2 ? 0 : 4), low4);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * t), _mm256_set1_epi8(3));
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32));
        const int8_t *scales = (const int8_t *)(b + 192 + 8 * n);
        const float d = half_f16c(b + 208);
        o->scale[0] = d * (float)scales[2 * t];
        o->scale[1] = d * (float)scales[2 * t + 1];
        o->offset[0] = o->offset[1] = 0;
        return q;
    }
    case ENGRAM_IQ4_NL:
    case ENGRAM_IQ4_XS: {
        const int xs = type == ENGRAM_IQ4_XS;
        const __m128i packed = _mm_loadu_si128((const __m128i *)(xs ? b + 8 + 16 * g : b + 2));
        const __m256i index = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4_values));
        o->scale[0] = o->scale[1] = xs ? half_f16c(b) * (float)(scale_iq4_xs(g, b) - 32) : half_f16c(b);
        o->offset[0] = o->offset[1] = 0;
        return _mm256_shuffle_epi8(table, index); // the table in both lanes: a lookup per byte
    }
    default:
        unpack(type, b, g, o);
        return _mm256_loadu_si256((const __m256i *)o->q);
    }
}

// Group g's 32 values as four float vectors (the integers q for block types, with their scales and
// offsets in `o`; the values themselves, scale 1, for 16-bit float rows).
VECTOR_TARGET static inline __attribute__((always_inline)) void group_floats(int type, const uint8_t *b, int g, group32 *o,
                                                                           __m256 out[4]) {
    if (float_rows(type)) {
        for (int j = 0; j < 4; j++) {
            const __m128i h = _mm_loadu_si128((const __m128i *)(b + 16 * j));
            out[j] = type == ENGRAM_F16 ? _mm256_cvtph_ps(h) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        }
        o->scale[0] = o->scale[1] = 1;
        o->offset[0] = o->offset[1] = 0;
        return;
    }
    const __m256i q = unpack_avx2(type, b, g, o);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

// Up to four rows of x per sweep over the weight rows: each group is unpacked once for all of them, and
// each row's sum is formed as with one row alone.
VECTOR_TARGET static inline __attribute__((always_inline)) void gemm4_avx2(
    int type, const uint8_t *w, int64_t cols, const float *x, const float *sums16, const int count, float *y,
    int64_t ldy, int64_t begin, int64_t end, int accumulate) {
    const int values = block_values(type), bytes = block_bytes(type), offset = group_type_has_offset(type);
    const int64_t nb = cols / values;
    group32 group;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * bytes;
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
        float offsets[4] = { 0, 0, 0, 0 };
        for (int64_t b = 0; b < nb; b++, block += bytes) {
            for (int g = 0; g < values / 32; g++) {
                __m256 q[4];
                group_floats(type, block, g, &group, q);
                const __m256 scale0 = _mm256_set1_ps(group.scale[0]), scale1 = _mm256_set1_ps(group.scale[1]);
                const int64_t at = b * values + 32 * g;
                for (int k = 0; k < count; k++) {
                    const float *xb = x + k * cols + at;
                    if (two_scales(type)) {
                        __m256 lo = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xb + 8), _mm256_mul_ps(q[0], _mm256_loadu_ps(xb)));
                        __m256 hi = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), _mm256_mul_ps(q[2], _mm256_loadu_ps(xb + 16)));
                        acc[k] = _mm256_fmadd_ps(scale1, hi, _mm256_fmadd_ps(scale0, lo, acc[k]));
                    } else { // one scale for the 32 values: one chain, one multiply by it
                        __m256 sum = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
                        for (int j = 1; j < 4; j++) sum = _mm256_fmadd_ps(q[j], _mm256_loadu_ps(xb + 8 * j), sum);
                        acc[k] = _mm256_fmadd_ps(scale0, sum, acc[k]);
                    }
                    if (offset) {
                        const float *s = sums16 + k * (cols / 16) + at / 16;
                        offsets[k] += group.offset[0] * s[0] + group.offset[1] * s[1];
                    }
                }
            }
        }
        for (int k = 0; k < count; k++) {
            float total = horizontal_sum(acc[k]) + offsets[k];
            float *out = y + k * ldy + r;
            *out = accumulate ? *out + total : total;
        }
    }
}

// Values of a group as floats: scale · q, plus the offset where the type has one (two roundings, as in
// the portable loop).
VECTOR_TARGET static inline __attribute__((always_inline)) void dequantize_avx2(
    int type, const uint8_t *w, int64_t cols, float *out, int64_t begin, int64_t end) {
    const int values = block_values(type), bytes = block_bytes(type), offset = group_type_has_offset(type);
    const int64_t nb = cols / values;
    group32 group;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *block = w + r * nb * bytes;
        float *y = out + r * cols;
        for (int64_t b = 0; b < nb; b++, block += bytes) {
            for (int g = 0; g < values / 32; g++, y += 32) {
                __m256 q[4];
                group_floats(type, block, g, &group, q);
                for (int j = 0; j < 4; j++) {
                    __m256 v = _mm256_mul_ps(_mm256_set1_ps(group.scale[j / 2]), q[j]);
                    if (offset) v = _mm256_add_ps(v, _mm256_set1_ps(group.offset[j / 2]));
                    _mm256_storeu_ps(y + 8 * j, v);
                }
            }
        }
    }
}
#endif

// One compiled copy of each loop per type (a constant there, so the unpacking's switch folds away) and,
// for the vector product, per count of x rows (so the loops over them unroll).
#define FOR_EACH_GROUP_TYPE(X) \
    X(F16) X(BF16) X(Q4_0) X(Q5_0) X(Q5_1) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K) X(IQ4_NL) X(IQ4_XS)

#define PORTABLE_LOOPS(T) \
    static void gemm_portable_##T(const uint8_t *w, int64_t cols, const float *x, const float *s, int64_t n, float *y, \
                                  int64_t ldy, int64_t begin, int64_t end, int accumulate) { \
        gemm_portable(ENGRAM_##T, w, cols, x, s, n, y, ldy, begin, end, accumulate); \
    } \
    static void dequantize_portable_##T(const uint8_t *w, int64_t cols, float *out, int64_t begin, int64_t end) { \
        dequantize_portable(ENGRAM_##T, w, cols, out, begin, end); \
    }
FOR_EACH_GROUP_TYPE(PORTABLE_LOOPS)
#undef PORTABLE_LOOPS

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VECTOR_LOOPS(T) \
    VECTOR_TARGET static void gemm4_avx2_##T(const uint8_t *w, int64_t cols, const float *x, const float *s, int count, \
                                              float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate) { \
        switch (count) { \
        case 1: gemm4_avx2(ENGRAM_##T, w, cols, x, s, 1, y, ldy, begin, end, accumulate); return; \
        case 2: gemm4_avx2(ENGRAM_##T, w, cols, x, s, 2, y, ldy, begin, end, accumulate); return; \
        case 3: gemm4_avx2(ENGRAM_##T, w, cols, x, s, 3, y, ldy, begin, end, accumulate); return; \
        default: gemm4_avx2(ENGRAM_##T, w, cols, x, s, 4, y, ldy, begin, end, accumulate); return; \
        } \
    } \
    VECTOR_TARGET static void dequantize_avx2_##T(const uint8_t *w, int64_t cols, float *out, int64_t begin, int64_t end) { \
        dequantize_avx2(ENGRAM_##T, w, cols, out, begin, end); \
    }
FOR_EACH_GROUP_TYPE(VECTOR_LOOPS)
#undef VECTOR_LOOPS
#define VECTORIZED 1
#else
#define VECTORIZED 0
#endif

void group_dequantize_rows(int type, const void *weights, int64_t cols, float *out, int64_t begin, int64_t end,
                           int vectorized) {
    const uint8_t *w = weights;
#if VECTORIZED
    if (vectorized) {
#define CASE(T) case ENGRAM_##T: dequantize_avx2_##T(w, cols, out, begin, end); return;
        switch (type) { FOR_EACH_GROUP_TYPE(CASE) }
#undef CASE
    }
#endif
    (void)vectorized;
#define CASE(T) case ENGRAM_##T: dequantize_portable_##T(w, cols, out, begin, end); return;
    switch (type) { FOR_EACH_GROUP_TYPE(CASE) }
#undef CASE
}

void group_gemm_rows(int type, const void *weights, int64_t cols, const float *x, const float *sums16, int64_t n,
                     float *y, int64_t ldy, int64_t begin, int64_t end, int accumulate, int vectorized) {
    const uint8_t *w = weights;
    // Slices of 64 weight rows stay in cache while every row of x passes over them.
    for (int64_t slice = begin; slice < end; slice += 64) {
        const int64_t stop = slice + 64 < end ? slice + 64 : end;
#if VECTORIZED
        if (vectorized) {
            for (int64_t i = 0; i < n; i += 4) {
                const int count = n - i < 4 ? (int)(n - i) : 4;
                const float *xi = x + i * cols, *si = sums16 ? sums16 + i * (cols / 16) : NULL;
#define CASE(T) case ENGRAM_##T: gemm4_avx2_##T(w, cols, xi, si, count, y + i * ldy, ldy, slice, stop, accumulate); break;
                switch (type) { FOR_EACH_GROUP_TYPE(CASE) }
#undef CASE
            }
            continue;
        }
#endif
#define CASE(T) case ENGRAM_##T: gemm_portable_##T(w, cols, x, sums16, n, y, ldy, slice, stop, accumulate); break;
        switch (type) { FOR_EACH_GROUP_TYPE(CASE) }
#undef CASE
    }
    (void)vectorized;
}
