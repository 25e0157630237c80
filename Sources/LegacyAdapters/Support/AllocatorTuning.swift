import CSocketShims

/// Process-wide allocator settings for daemons that move multi-MiB frames.
///
/// glibc serves allocations of 128 KiB and more with fresh `mmap`s, and returns freed heap
/// to the kernel: every 16 MiB frame then costs 4,096 page faults (zeroed pages) for each
/// buffer it passes through, several times the cost of copying it. A daemon (never the
/// library: this is process-wide) may keep such buffers in the heap instead.
package enum AllocatorTuning {
    /// Serves allocations up to 32 MiB from the heap and keeps up to 128 MiB of freed heap
    /// (glibc `mallopt`; elsewhere nothing). Returns whether the settings took effect.
    @discardableResult
    package static func keepLargeBuffers() -> Bool {
        endpointmux_keep_large_allocations(32 << 20, 128 << 20) == 0
    }
}
