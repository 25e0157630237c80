// libprotobuf-c packing a Frame into a preallocated buffer: the baseline encode.v1.* and
// respond.v1.* are compared with. The generated code is the main package's CProtobuf
// target (linked through EndpointMux); only its header is included here.
#include "CPackBaseline.h"
#include <protobuf-c/protobuf-c.h>
#include "../../../Sources/CProtobuf/include/endpointmux_v1.pb-c.h"

size_t endpointmux_bench_c_pack_frame(uint8_t *out, const uint8_t *payload, size_t payload_length,
                                      int32_t kind, uint32_t lane, uint64_t request_id,
                                      const char *traceparent, const char *tracestate) {
    Endpointmux__V1__Frame frame = ENDPOINTMUX__V1__FRAME__INIT;
    frame.envelope_version = 1;
    frame.kind = (Endpointmux__V1__FrameKind)kind;
    frame.payload_protocol = lane;
    frame.payload.data = (uint8_t *)payload;
    frame.payload.len = payload_length;
    frame.request_id = request_id;
    frame.traceparent = (char *)traceparent;
    frame.tracestate = (char *)tracestate;
    size_t body = endpointmux__v1__frame__pack(&frame, out + 5);
    out[0] = 1;
    out[1] = (uint8_t)body;
    out[2] = (uint8_t)(body >> 8);
    out[3] = (uint8_t)(body >> 16);
    out[4] = (uint8_t)(body >> 24);
    return body + 5;
}
