// BLAKE3 hash_many for AVX2 and AVX-512, after the reference implementation's
// blake3_avx2.c / blake3_avx512.c (CC0 / Apache-2.0): state word i of eight (sixteen)
// compressions lives in one 256-bit (512-bit) vector.
// Compiled for the baseline target; only the functions marked AVX2 use AVX2, and callers
// check endpointmux_blake3_avx2_available() first.
#include "CBLAKE3SIMD.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4 };

static const uint8_t MSG_SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

AVX2_INLINE __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
AVX2_INLINE __m256i xorv(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
AVX2_INLINE __m256i set1(uint32_t x) { return _mm256_set1_epi32((int32_t)x); }
AVX2_INLINE __m256i rot16(__m256i x) {
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2,
                                                  13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2));
}
AVX2_INLINE __m256i rot12(__m256i x) { return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20)); }
AVX2_INLINE __m256i rot8(__m256i x) {
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1,
                                                  12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1));
}
AVX2_INLINE __m256i rot7(__m256i x) { return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25)); }

AVX2_INLINE void round_fn(__m256i v[16], const __m256i m[16], size_t r) {
    const uint8_t *s = MSG_SCHEDULE[r];
    v[0] = add(v[0], m[s[0]]); v[1] = add(v[1], m[s[2]]); v[2] = add(v[2], m[s[4]]); v[3] = add(v[3], m[s[6]]);
    v[0] = add(v[0], v[4]); v[1] = add(v[1], v[5]); v[2] = add(v[2], v[6]); v[3] = add(v[3], v[7]);
    v[12] = rot16(xorv(v[12], v[0])); v[13] = rot16(xorv(v[13], v[1]));
    v[14] = rot16(xorv(v[14], v[2])); v[15] = rot16(xorv(v[15], v[3]));
    v[8] = add(v[8], v[12]); v[9] = add(v[9], v[13]); v[10] = add(v[10], v[14]); v[11] = add(v[11], v[15]);
    v[4] = rot12(xorv(v[4], v[8])); v[5] = rot12(xorv(v[5], v[9]));
    v[6] = rot12(xorv(v[6], v[10])); v[7] = rot12(xorv(v[7], v[11]));
    v[0] = add(v[0], m[s[1]]); v[1] = add(v[1], m[s[3]]); v[2] = add(v[2], m[s[5]]); v[3] = add(v[3], m[s[7]]);
    v[0] = add(v[0], v[4]); v[1] = add(v[1], v[5]); v[2] = add(v[2], v[6]); v[3] = add(v[3], v[7]);
    v[12] = rot8(xorv(v[12], v[0])); v[13] = rot8(xorv(v[13], v[1]));
    v[14] = rot8(xorv(v[14], v[2])); v[15] = rot8(xorv(v[15], v[3]));
    v[8] = add(v[8], v[12]); v[9] = add(v[9], v[13]); v[10] = add(v[10], v[14]); v[11] = add(v[11], v[15]);
    v[4] = rot7(xorv(v[4], v[8])); v[5] = rot7(xorv(v[5], v[9]));
    v[6] = rot7(xorv(v[6], v[10])); v[7] = rot7(xorv(v[7], v[11]));

    v[0] = add(v[0], m[s[8]]); v[1] = add(v[1], m[s[10]]); v[2] = add(v[2], m[s[12]]); v[3] = add(v[3], m[s[14]]);
    v[0] = add(v[0], v[5]); v[1] = add(v[1], v[6]); v[2] = add(v[2], v[7]); v[3] = add(v[3], v[4]);
    v[15] = rot16(xorv(v[15], v[0])); v[12] = rot16(xorv(v[12], v[1]));
    v[13] = rot16(xorv(v[13], v[2])); v[14] = rot16(xorv(v[14], v[3]));
    v[10] = add(v[10], v[15]); v[11] = add(v[11], v[12]); v[8] = add(v[8], v[13]); v[9] = add(v[9], v[14]);
    v[5] = rot12(xorv(v[5], v[10])); v[6] = rot12(xorv(v[6], v[11]));
    v[7] = rot12(xorv(v[7], v[8])); v[4] = rot12(xorv(v[4], v[9]));
    v[0] = add(v[0], m[s[9]]); v[1] = add(v[1], m[s[11]]); v[2] = add(v[2], m[s[13]]); v[3] = add(v[3], m[s[15]]);
    v[0] = add(v[0], v[5]); v[1] = add(v[1], v[6]); v[2] = add(v[2], v[7]); v[3] = add(v[3], v[4]);
    v[15] = rot8(xorv(v[15], v[0])); v[12] = rot8(xorv(v[12], v[1]));
    v[13] = rot8(xorv(v[13], v[2])); v[14] = rot8(xorv(v[14], v[3]));
    v[10] = add(v[10], v[15]); v[11] = add(v[11], v[12]); v[8] = add(v[8], v[13]); v[9] = add(v[9], v[14]);
    v[5] = rot7(xorv(v[5], v[10])); v[6] = rot7(xorv(v[6], v[11]));
    v[7] = rot7(xorv(v[7], v[8])); v[4] = rot7(xorv(v[4], v[9]));
}

// Rows (word 0…7 of input i in vecs[i]) to columns (word i of inputs 0…7 in vecs[i]).
AVX2_INLINE void transpose_vecs(__m256i vecs[8]) {
    __m256i ab_0145 = _mm256_unpacklo_epi32(vecs[0], vecs[1]);
    __m256i ab_2367 = _mm256_unpackhi_epi32(vecs[0], vecs[1]);
    __m256i cd_0145 = _mm256_unpacklo_epi32(vecs[2], vecs[3]);
    __m256i cd_2367 = _mm256_unpackhi_epi32(vecs[2], vecs[3]);
    __m256i ef_0145 = _mm256_unpacklo_epi32(vecs[4], vecs[5]);
    __m256i ef_2367 = _mm256_unpackhi_epi32(vecs[4], vecs[5]);
    __m256i gh_0145 = _mm256_unpacklo_epi32(vecs[6], vecs[7]);
    __m256i gh_2367 = _mm256_unpackhi_epi32(vecs[6], vecs[7]);
    __m256i abcd_04 = _mm256_unpacklo_epi64(ab_0145, cd_0145);
    __m256i abcd_15 = _mm256_unpackhi_epi64(ab_0145, cd_0145);
    __m256i abcd_26 = _mm256_unpacklo_epi64(ab_2367, cd_2367);
    __m256i abcd_37 = _mm256_unpackhi_epi64(ab_2367, cd_2367);
    __m256i efgh_04 = _mm256_unpacklo_epi64(ef_0145, gh_0145);
    __m256i efgh_15 = _mm256_unpackhi_epi64(ef_0145, gh_0145);
    __m256i efgh_26 = _mm256_unpacklo_epi64(ef_2367, gh_2367);
    __m256i efgh_37 = _mm256_unpackhi_epi64(ef_2367, gh_2367);
    vecs[0] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x20);
    vecs[1] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x20);
    vecs[2] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x20);
    vecs[3] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x20);
    vecs[4] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x31);
    vecs[5] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x31);
    vecs[6] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x31);
    vecs[7] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x31);
}

// The 16 message words of block `offset` of the eight inputs at `input`, `input + stride`, …
AVX2_INLINE void load_msg(const uint8_t *input, size_t stride, size_t offset, __m256i m[16]) {
    for (size_t i = 0; i < 8; i++) {
        _mm_prefetch((const char *)(input + i * stride + offset + 256), _MM_HINT_T0);
        m[i] = _mm256_loadu_si256((const __m256i *)(input + i * stride + offset));
        m[i + 8] = _mm256_loadu_si256((const __m256i *)(input + i * stride + offset + 32));
    }
    transpose_vecs(&m[0]);
    transpose_vecs(&m[8]);
}

// Eight compressions of `blocks` 64-byte blocks each (inputs `stride` bytes apart), flags
// `flags`, plus `flags_start` on the first block and `flags_end` on the last; counters
// `counter + i` (chunks) or all `counter` (parents). Writes 8 chaining values to `out`.
AVX2_INLINE void hash8(const uint8_t *input, size_t stride, size_t blocks, uint64_t counter, int increment,
                       uint32_t flags, uint32_t flags_start, uint32_t flags_end, uint32_t *out) {
    __m256i h[8];
    for (size_t i = 0; i < 8; i++) h[i] = set1(IV[i]);
    const __m256i mask = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256i deltas = increment ? mask : _mm256_setzero_si256();
    // 64-bit counters counter + lane, split into low and high words.
    __m256i low = add(set1((uint32_t)counter), deltas);
    // Carry where the low word wrapped (unsigned low + delta < low).
    __m256i carry = _mm256_cmpgt_epi32(xorv(set1((uint32_t)counter), set1(0x80000000u)),
                                       xorv(low, set1(0x80000000u)));
    __m256i high = _mm256_sub_epi32(set1((uint32_t)(counter >> 32)), carry);
    uint32_t block_flags = flags | flags_start;
    for (size_t b = 0; b < blocks; b++) {
        if (b + 1 == blocks) block_flags |= flags_end;
        __m256i m[16];
        load_msg(input, stride, b * 64, m);
        __m256i v[16] = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                         set1(IV[0]), set1(IV[1]), set1(IV[2]), set1(IV[3]),
                         low, high, set1(64), set1(block_flags)};
        round_fn(v, m, 0); round_fn(v, m, 1); round_fn(v, m, 2); round_fn(v, m, 3);
        round_fn(v, m, 4); round_fn(v, m, 5); round_fn(v, m, 6);
        for (size_t i = 0; i < 8; i++) h[i] = xorv(v[i], v[i + 8]);
        block_flags = flags;
    }
    transpose_vecs(h);
    for (size_t i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(out + 8 * i), h[i]);
}

AVX2 void endpointmux_blake3_avx2_hash8_chunks(const uint8_t *input, uint64_t counter, uint32_t *out) {
    hash8(input, 1024, 16, counter, 1, 0, CHUNK_START, CHUNK_END, out);
}

AVX2 void endpointmux_blake3_avx2_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out) {
    // Chaining values of the current level, 8 words each; at least 16 entries so the
    // padding lanes of the last levels (fewer than 8 parents) read initialized memory.
    uint32_t cvs[256 * 8];
    if (chunk_count > 256) chunk_count = 256;
    if (chunk_count < 16) memset(cvs + 8 * 8, 0, 8 * 8 * sizeof(uint32_t));
    for (size_t i = 0; i < chunk_count; i += 8) {
        hash8(input + i * 1024, 1024, 16, counter + i, 1, 0, CHUNK_START, CHUNK_END, cvs + 8 * i);
    }
    // Each level in place: parent j reads entries 2j and 2j + 1 and is written to entry j,
    // eight at a time (a group's loads happen before its stores).
    size_t count = chunk_count;
    while (count > 1) {
        size_t parents = count / 2;
        if (parents >= 8) {
            for (size_t j = 0; j < parents; j += 8) {
                hash8((const uint8_t *)(cvs + 16 * j), 64, 1, 0, 0, PARENT, 0, 0, cvs + 8 * j);
            }
        } else {
            uint32_t level[8 * 8];
            hash8((const uint8_t *)cvs, 64, 1, 0, 0, PARENT, 0, 0, level);
            memcpy(cvs, level, parents * 8 * sizeof(uint32_t));
        }
        count = parents;
    }
    memcpy(out, cvs, 8 * sizeof(uint32_t));
}

// ---- AVX-512: sixteen compressions per vector ------------------------------------------

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __m512i add16(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
AVX512_INLINE __m512i xor16(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
AVX512_INLINE __m512i set16(uint32_t x) { return _mm512_set1_epi32((int32_t)x); }

#define G16(a, b, c, d, x, y)                                                 \
    do {                                                                      \
        v[a] = add16(add16(v[a], v[b]), (x));                                 \
        v[d] = _mm512_ror_epi32(xor16(v[d], v[a]), 16);                       \
        v[c] = add16(v[c], v[d]);                                             \
        v[b] = _mm512_ror_epi32(xor16(v[b], v[c]), 12);                       \
        v[a] = add16(add16(v[a], v[b]), (y));                                 \
        v[d] = _mm512_ror_epi32(xor16(v[d], v[a]), 8);                        \
        v[c] = add16(v[c], v[d]);                                             \
        v[b] = _mm512_ror_epi32(xor16(v[b], v[c]), 7);                        \
    } while (0)

AVX512_INLINE void round16(__m512i v[16], const __m512i m[16], size_t r) {
    const uint8_t *s = MSG_SCHEDULE[r];
    G16(0, 4, 8, 12, m[s[0]], m[s[1]]);
    G16(1, 5, 9, 13, m[s[2]], m[s[3]]);
    G16(2, 6, 10, 14, m[s[4]], m[s[5]]);
    G16(3, 7, 11, 15, m[s[6]], m[s[7]]);
    G16(0, 5, 10, 15, m[s[8]], m[s[9]]);
    G16(1, 6, 11, 12, m[s[10]], m[s[11]]);
    G16(2, 7, 8, 13, m[s[12]], m[s[13]]);
    G16(3, 4, 9, 14, m[s[14]], m[s[15]]);
}

// Rows (the 16 words of input i in vecs[i]) to columns (word w of inputs 0…15 in vecs[w]).
AVX512_INLINE void transpose16(__m512i vecs[16]) {
    __m512i pairs_lo[8], pairs_hi[8];
    for (size_t i = 0; i < 8; i++) {
        pairs_lo[i] = _mm512_unpacklo_epi32(vecs[2 * i], vecs[2 * i + 1]);
        pairs_hi[i] = _mm512_unpackhi_epi32(vecs[2 * i], vecs[2 * i + 1]);
    }
    // quads[g][k]: inputs 4g…4g+3 of word 4L + k in 128-bit lane L.
    __m512i quads[4][4];
    for (size_t g = 0; g < 4; g++) {
        quads[g][0] = _mm512_unpacklo_epi64(pairs_lo[2 * g], pairs_lo[2 * g + 1]);
        quads[g][1] = _mm512_unpackhi_epi64(pairs_lo[2 * g], pairs_lo[2 * g + 1]);
        quads[g][2] = _mm512_unpacklo_epi64(pairs_hi[2 * g], pairs_hi[2 * g + 1]);
        quads[g][3] = _mm512_unpackhi_epi64(pairs_hi[2 * g], pairs_hi[2 * g + 1]);
    }
    for (size_t k = 0; k < 4; k++) {
        __m512i x = _mm512_shuffle_i32x4(quads[0][k], quads[1][k], 0x88);
        __m512i y = _mm512_shuffle_i32x4(quads[0][k], quads[1][k], 0xDD);
        __m512i z = _mm512_shuffle_i32x4(quads[2][k], quads[3][k], 0x88);
        __m512i w = _mm512_shuffle_i32x4(quads[2][k], quads[3][k], 0xDD);
        vecs[k] = _mm512_shuffle_i32x4(x, z, 0x88);
        vecs[8 + k] = _mm512_shuffle_i32x4(x, z, 0xDD);
        vecs[4 + k] = _mm512_shuffle_i32x4(y, w, 0x88);
        vecs[12 + k] = _mm512_shuffle_i32x4(y, w, 0xDD);
    }
}

// As hash8, sixteen inputs at a time.
AVX512_INLINE void hash16(const uint8_t *input, size_t stride, size_t blocks, uint64_t counter, int increment,
                          uint32_t flags, uint32_t flags_start, uint32_t flags_end, uint32_t *out) {
    __m512i h[8];
    for (size_t i = 0; i < 8; i++) h[i] = set16(IV[i]);
    const __m512i deltas = increment ? _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
                                     : _mm512_setzero_si512();
    __m512i base_low = set16((uint32_t)counter);
    __m512i low = add16(base_low, deltas);
    __mmask16 carry = _mm512_cmplt_epu32_mask(low, base_low);
    __m512i high = _mm512_mask_add_epi32(set16((uint32_t)(counter >> 32)), carry,
                                         set16((uint32_t)(counter >> 32)), set16(1));
    uint32_t block_flags = flags | flags_start;
    for (size_t b = 0; b < blocks; b++) {
        if (b + 1 == blocks) block_flags |= flags_end;
        __m512i m[16];
        for (size_t i = 0; i < 16; i++) {
            // Sixteen streams 1 KiB apart are too many for the hardware prefetcher: ask for
            // the block four ahead (as the reference does; harmless past the end).
            _mm_prefetch((const char *)(input + i * stride + b * 64 + 256), _MM_HINT_T0);
            m[i] = _mm512_loadu_si512((const void *)(input + i * stride + b * 64));
        }
        transpose16(m);
        __m512i v[16] = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                         set16(IV[0]), set16(IV[1]), set16(IV[2]), set16(IV[3]),
                         low, high, set16(64), set16(block_flags)};
        round16(v, m, 0); round16(v, m, 1); round16(v, m, 2); round16(v, m, 3);
        round16(v, m, 4); round16(v, m, 5); round16(v, m, 6);
        for (size_t i = 0; i < 8; i++) h[i] = xor16(v[i], v[i + 8]);
        block_flags = flags;
    }
    uint32_t words[8][16];
    for (size_t i = 0; i < 8; i++) _mm512_storeu_si512((void *)words[i], h[i]);
    for (size_t lane = 0; lane < 16; lane++) {
        for (size_t i = 0; i < 8; i++) out[8 * lane + i] = words[i][lane];
    }
}

AVX512 void endpointmux_blake3_avx512_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out) {
    // As the AVX2 subtree, sixteen at a time; at least 32 entries so the padding lanes of
    // the last levels (fewer than 16 parents) read initialized memory.
    uint32_t cvs[256 * 8];
    if (chunk_count > 256) chunk_count = 256;
    if (chunk_count < 32) memset(cvs + 16 * 8, 0, 16 * 8 * sizeof(uint32_t));
    for (size_t i = 0; i < chunk_count; i += 16) {
        hash16(input + i * 1024, 1024, 16, counter + i, 1, 0, CHUNK_START, CHUNK_END, cvs + 8 * i);
    }
    size_t count = chunk_count;
    while (count > 1) {
        size_t parents = count / 2;
        if (parents >= 16) {
            for (size_t j = 0; j < parents; j += 16) {
                hash16((const uint8_t *)(cvs + 16 * j), 64, 1, 0, 0, PARENT, 0, 0, cvs + 8 * j);
            }
        } else {
            uint32_t level[16 * 8];
            hash16((const uint8_t *)cvs, 64, 1, 0, 0, PARENT, 0, 0, level);
            memcpy(cvs, level, parents * 8 * sizeof(uint32_t));
        }
        count = parents;
    }
    memcpy(out, cvs, 8 * sizeof(uint32_t));
}

int endpointmux_blake3_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

int endpointmux_blake3_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

#else

int endpointmux_blake3_avx512_available(void) { return 0; }
void endpointmux_blake3_avx512_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out) {
    (void)input; (void)chunk_count; (void)counter; (void)out;
}
int endpointmux_blake3_avx2_available(void) { return 0; }
void endpointmux_blake3_avx2_hash8_chunks(const uint8_t *input, uint64_t counter, uint32_t *out) {
    (void)input; (void)counter; (void)out;
}
void endpointmux_blake3_avx2_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out) {
    (void)input; (void)chunk_count; (void)counter; (void)out;
}

#endif
