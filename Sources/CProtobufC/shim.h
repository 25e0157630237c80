// The system library libprotobuf-c (Debian: libprotobuf-c-dev to build, libprotobuf-c1 to run).
// Found through pkg-config (`libprotobuf-c`); SwiftPM names the apt package when it is missing,
// and so does the error below (scripts/check-missing-protobuf-c.sh checks it).
#ifndef ENDPOINTMUX_CPROTOBUFC_SHIM_H
#define ENDPOINTMUX_CPROTOBUFC_SHIM_H
#if __has_include(<protobuf-c/protobuf-c.h>)
#include <protobuf-c/protobuf-c.h>
#else
#error "libprotobuf-c headers not found: install the Debian/Ubuntu package libprotobuf-c-dev (apt-get install libprotobuf-c-dev)"
#endif
#endif
