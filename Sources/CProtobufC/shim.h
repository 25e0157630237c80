// The system library libprotobuf-c (Debian: libprotobuf-c-dev to build, libprotobuf-c1 to run).
// Found through pkg-config (`libprotobuf-c`); SwiftPM names the apt package when it is missing.
#ifndef ENDPOINTMUX_CPROTOBUFC_SHIM_H
#define ENDPOINTMUX_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
