#ifndef ENDPOINTMUX_CPACKBASELINE_H
#define ENDPOINTMUX_CPACKBASELINE_H
#include <stddef.h>
#include <stdint.h>
/// Same-run baseline for the frame encoder: builds a `Frame` (envelope 1) and packs it with
/// libprotobuf-c straight after a v1 header into `out`, which must be large enough.
/// Returns the bytes written (header included).
size_t endpointmux_bench_c_pack_frame(uint8_t *out, const uint8_t *payload, size_t payload_length,
                                      int32_t kind, uint32_t lane, uint64_t request_id,
                                      const char *traceparent, const char *tracestate);
#endif
