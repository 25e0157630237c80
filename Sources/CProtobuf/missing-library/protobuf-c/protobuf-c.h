// Stands in front of the system's <protobuf-c/protobuf-c.h> for the generated C files of this
// target (a header search path of the target, searched before the system directories): it
// includes the real header, or, when libprotobuf-c-dev is not installed, stops the build with
// an error that names the package (scripts/check-missing-protobuf-c.sh checks both cases).
#if __has_include_next(<protobuf-c/protobuf-c.h>)
#include_next <protobuf-c/protobuf-c.h>
#else
#error "libprotobuf-c headers not found: install the Debian/Ubuntu package libprotobuf-c-dev (apt-get install libprotobuf-c-dev)"
#endif
