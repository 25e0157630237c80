#ifndef ENDPOINTMUX_CMALLOCCOUNTER_H
#define ENDPOINTMUX_CMALLOCCOUNTER_H
#include <stdint.h>
/// Number of allocations (malloc, calloc, realloc, memalign family) since start.
uint64_t endpointmux_allocation_count(void);
/// Opaque sink that keeps a value alive for the optimiser.
void endpointmux_black_hole(const void *pointer, uint64_t value);
#endif
