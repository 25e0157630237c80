#ifndef ENDPOINTMUX_CBLAKE3SIMD_H
#define ENDPOINTMUX_CBLAKE3SIMD_H

// BLAKE3's hash_many with AVX2 (eight chunks, or eight parent nodes, per vector compression)
// and AVX-512 (sixteen),
// selected at run time: the package builds for the x86-64 baseline and passes no -mavx2.
// EndpointMux's portable Swift code (BLAKE3.swift, BLAKE3HashMany.swift) is the fallback
// and the differential reference. Chaining values are 8 native-endian 32-bit words.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the AVX2 functions below may be called on this CPU and OS, else 0.
int endpointmux_blake3_avx2_available(void);

/// The chaining values of the 8 whole 1 KiB chunks at `input` (chunk counters `counter` …
/// `counter + 7`) into `out` (8 × 8 words, chunk 0 first). AVX2 only.
void endpointmux_blake3_avx2_hash8_chunks(const uint8_t *input, uint64_t counter, uint32_t *out);

/// The chaining value of the complete subtree of `chunk_count` whole chunks at `input`
/// (a power of two from 8 to 256; chunk counters `counter` … ; `counter` a multiple of
/// `chunk_count`; not the root) into `out` (8 words). AVX2 only.
void endpointmux_blake3_avx2_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out);

/// 1 when the AVX-512 function below may be called (AVX-512F, with the OS saving ZMM state).
int endpointmux_blake3_avx512_available(void);

/// As endpointmux_blake3_avx2_subtree, sixteen chunks (or parents) per compression.
/// `chunk_count` a power of two from 16 to 256. AVX-512F only.
void endpointmux_blake3_avx512_subtree(const uint8_t *input, size_t chunk_count, uint64_t counter, uint32_t *out);

#ifdef __cplusplus
}
#endif

#endif
