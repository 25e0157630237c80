import CSocketShims

@_spi(Internals) package import EndpointMux
import Glibc

/// Thin wrappers over `recvmsg`, `sendmsg`, `poll` and `fcntl` for stream sockets that
/// carry `SCM_RIGHTS` file descriptors.
///
/// Every call works on a descriptor the caller owns and never closes it. Calls respect the
/// descriptor's blocking mode: on a non-blocking socket they return
/// ``ReceiveOutcome/wouldBlock`` / `nil` instead of waiting. Only ``waitUntilReadable(_:timeout:)``
/// and ``waitUntilWritable(_:timeout:)`` wait on purpose; call them on threads you own.
/// `EINTR` is retried everywhere. Sends never raise `SIGPIPE`.
package enum SocketIO {
    /// The default size of a receive control buffer, in descriptors (what the
    /// jsonrpc-fdpass references use).
    package static let defaultMaxFileDescriptorsPerReceive = 512

    /// The largest control buffer ``receive(from:into:fileDescriptors:maxFileDescriptors:)``,
    /// ``SocketReceiver`` and ``send(to:bytes:fileDescriptors:)`` will build, in descriptors.
    /// Linux accepts at most 253 per `sendmsg`.
    package static let maxFileDescriptorsPerCall = 65_536

    /// What one `recvmsg` produced.
    package enum ReceiveOutcome: Sendable, Hashable {
        /// `byteCount` bytes (at least one) were stored at the start of the buffer. Any
        /// descriptors that came with them have been appended to the queue.
        case received(byteCount: Int)
        /// The peer shut down its sending side; no more bytes will come.
        case endOfFile
        /// The socket is non-blocking and nothing is available yet.
        case wouldBlock
    }

    /// Reads once from the stream socket `fd` with `recvmsg`, storing bytes in `buffer` and
    /// appending every `SCM_RIGHTS` descriptor that arrives to `fileDescriptors`, in order.
    ///
    /// Received descriptors are close-on-exec (`MSG_CMSG_CLOEXEC` on Linux; `FD_CLOEXEC`
    /// set just after the call elsewhere). Every control message is walked, and descriptor
    /// counts come from each message's `cmsg_len`. On Linux the descriptors of one
    /// `sendmsg` ride with its first byte, and one `recvmsg` returns those of at most one
    /// `sendmsg`. The control buffer, room for `maxFileDescriptors` descriptors (clamped to
    /// 0 through ``maxFileDescriptorsPerCall``), is a temporary allocation; use
    /// ``SocketReceiver`` to reuse one across calls.
    ///
    /// - Throws: ``EndpointMuxError/controlTruncated(received:)`` on `MSG_CTRUNC` (the
    ///   descriptors that did arrive are closed, not queued; the bytes of that call are in
    ///   `buffer` but the stream should be abandoned); ``EndpointMuxError/invalidArgument(_:)``
    ///   for an empty `buffer`; ``EndpointMuxError/system(operation:errno:)`` with
    ///   `"recvmsg"` otherwise.
    package static func receive(
        from fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        fileDescriptors: inout FileDescriptorQueue,
        maxFileDescriptors: Int = defaultMaxFileDescriptorsPerReceive
    ) throws(EndpointMuxError) -> ReceiveOutcome {
        let byteCount = controlSpace(forFileDescriptors: maxFileDescriptors)
        let result: Result<ReceiveOutcome, EndpointMuxError> = withUnsafeTemporaryAllocation(
            byteCount: byteCount,
            alignment: MemoryLayout<cmsghdr>.alignment
        ) { control in
            do throws(EndpointMuxError) {
                return .success(
                    try receive(from: fd, into: buffer, fileDescriptors: &fileDescriptors, control: control)
                )
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Writes once to the stream socket `fd` with one `sendmsg`, attaching
    /// `fileDescriptors` (if any) as one `SCM_RIGHTS` control message.
    ///
    /// The descriptors are duplicated into the peer; the caller still owns its own and
    /// closes them when it is done. Attached descriptors travel with the first byte the
    /// kernel accepts, so a partial write still delivers all of them. Uses `MSG_NOSIGNAL`
    /// (on Darwin, `SO_NOSIGPIPE` is set on `fd` first), so a vanished peer is an `EPIPE`
    /// error, never a signal. Respects the socket's blocking mode.
    ///
    /// - Returns: the number of bytes written (at least one when `bytes` is not empty, 0
    ///   for empty `bytes` without descriptors), or `nil` when a non-blocking socket cannot
    ///   take anything now (`EAGAIN`); then nothing, descriptors included, was sent.
    /// - Throws: ``EndpointMuxError/fileDescriptorBatchRejected(count:errno:)`` when the
    ///   kernel refuses that many descriptors in one call (`EINVAL`; nothing was sent);
    ///   ``EndpointMuxError/invalidArgument(_:)`` for descriptors without data bytes (a
    ///   zero-length send carries none) or more than ``maxFileDescriptorsPerCall``;
    ///   ``EndpointMuxError/system(operation:errno:)`` with `"sendmsg"` otherwise (`EPIPE`
    ///   when the peer has closed).
    package static func send(
        to fd: Int32,
        bytes: UnsafeRawBufferPointer,
        fileDescriptors: some Collection<Int32>
    ) throws(EndpointMuxError) -> Int? {
        let fdCount = fileDescriptors.count
        if bytes.isEmpty {
            guard fdCount == 0 else {
                throw .invalidArgument("file descriptors need at least one data byte to travel with")
            }
            return 0
        }
        return try send(to: fd, chunks: [bytes], fileDescriptors: fileDescriptors, nonBlocking: false)
    }

    /// Waits with `poll(2)` until `fd` is readable (or at end of stream, or in error: the
    /// next read reports which), or until `timeout` passes (`nil`: no limit).
    ///
    /// Blocks the calling thread: call it only on a thread you own. `EINTR` is retried with
    /// the time that remains.
    /// - Returns: `true` when ready, `false` when the timeout passed first.
    /// - Throws: ``EndpointMuxError/system(operation:errno:)`` with `"poll"` (`EBADF` for a
    ///   descriptor that is not open).
    package static func waitUntilReadable(_ fd: Int32, timeout: Duration?) throws(EndpointMuxError) -> Bool {
        try wait(fd, events: Int16(truncatingIfNeeded: POLLIN), timeout: timeout)
    }

    /// Waits with `poll(2)` until `fd` is writable (or in error or hung up: the next write
    /// reports which), or until `timeout` passes (`nil`: no limit).
    ///
    /// Blocks the calling thread: call it only on a thread you own. `EINTR` is retried with
    /// the time that remains.
    /// - Returns: `true` when ready, `false` when the timeout passed first.
    /// - Throws: ``EndpointMuxError/system(operation:errno:)`` with `"poll"` (`EBADF` for a
    ///   descriptor that is not open).
    package static func waitUntilWritable(_ fd: Int32, timeout: Duration?) throws(EndpointMuxError) -> Bool {
        try wait(fd, events: Int16(truncatingIfNeeded: POLLOUT), timeout: timeout)
    }

    /// Turns `O_NONBLOCK` on or off for `fd`.
    /// - Throws: ``EndpointMuxError/system(operation:errno:)`` with `"fcntl"`.
    package static func setNonBlocking(_ fd: Int32, _ on: Bool) throws(EndpointMuxError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { throw .system(operation: "fcntl", errno: errno) }
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        guard wanted != flags else { return }
        guard fcntl(fd, F_SETFL, wanted) == 0 else { throw .system(operation: "fcntl", errno: errno) }
    }

    /// The process id of the peer of the unix socket `fd`, as the kernel recorded it when
    /// the connection was made (`SO_PEERCRED` on Linux, `LOCAL_PEERPID` on Darwin).
    /// - Throws: ``EndpointMuxError/system(operation:errno:)`` with `"getsockopt"`.
    package static func peerProcessID(_ fd: Int32) throws(EndpointMuxError) -> Int32 {
        var pid: pid_t = 0
        guard endpointmux_peer_pid(fd, &pid) == 0 else {
            throw .system(operation: "getsockopt", errno: errno)
        }
        return Int32(pid)
    }

    // MARK: - Internals

    /// Bytes of control buffer for `count` descriptors (clamped to `0...maxFileDescriptorsPerCall`).
    static func controlSpace(forFileDescriptors count: Int) -> Int {
        let clamped = Swift.max(0, Swift.min(count, maxFileDescriptorsPerCall))
        return clamped == 0 ? 0 : endpointmux_cmsg_space(clamped * MemoryLayout<Int32>.size)
    }

    /// One `recvmsg` into `buffer` with `control` as the control buffer (`cmsghdr`-aligned).
    static func receive(
        from fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        fileDescriptors: inout FileDescriptorQueue,
        control: UnsafeMutableRawBufferPointer,
        nonBlocking: Bool = false
    ) throws(EndpointMuxError) -> ReceiveOutcome {
        guard let base = buffer.baseAddress, buffer.count > 0 else {
            throw .invalidArgument("receive buffer is empty")
        }
        var flags: Int32 = nonBlocking ? Int32(MSG_DONTWAIT) : 0
        flags |= Int32(MSG_CMSG_CLOEXEC)
        var iov = iovec(iov_base: base, iov_len: numericCast(buffer.count))
        var msg = msghdr()
        var byteCount: Int
        var failure: Int32 = 0
        repeat {
            byteCount = withUnsafeMutablePointer(to: &iov) { iovPointer in
                msg = msghdr()
                msg.msg_iov = iovPointer
                msg.msg_iovlen = 1
                if control.count > 0 {
                    msg.msg_control = control.baseAddress
                    msg.msg_controllen = numericCast(control.count)
                }
                return recvmsg(fd, &msg, flags)
            }
            failure = byteCount < 0 ? errno : 0
        } while byteCount < 0 && failure == EINTR
        guard byteCount >= 0 else {
            if failure == EAGAIN || failure == EWOULDBLOCK { return .wouldBlock }
            throw .system(operation: "recvmsg", errno: failure)
        }
        msg.msg_iov = nil  // points at a stack slot that is gone; the cmsg walk does not need it
        let arrived = collectRights(&msg, control: control, into: &fileDescriptors)
        if msg.msg_flags & Int32(MSG_CTRUNC) != 0 {
            fileDescriptors.closeLast(arrived)
            throw .controlTruncated(received: arrived)
        }
        // A zero-length read is end of stream. The kernel attaches descriptors to data
        // bytes, so none arrive with it; any that did are kept queued all the same.
        return byteCount == 0 ? .endOfFile : .received(byteCount: byteCount)
    }

    /// Appends the descriptors of every `SCM_RIGHTS` message in `msg`'s control data to
    /// `queue`, in order, and returns how many.
    private static func collectRights(
        _ msg: inout msghdr,
        control: UnsafeMutableRawBufferPointer,
        into queue: inout FileDescriptorQueue
    ) -> Int {
        guard let controlBase = control.baseAddress, control.count > 0 else { return 0 }
        let controlEnd = UnsafeRawPointer(controlBase) + control.count
        var arrived = 0
        var next = endpointmux_cmsg_firsthdr(&msg)
        while let cmsg = next {
            if cmsg.pointee.cmsg_level == SOL_SOCKET, cmsg.pointee.cmsg_type == Int32(SCM_RIGHTS),
                let data = endpointmux_cmsg_data(cmsg)
            {
                let start = UnsafeRawPointer(data)
                let available = start <= controlEnd ? controlEnd - start : 0
                let length = Swift.min(endpointmux_cmsg_data_length(cmsg), available)
                let count = length / MemoryLayout<Int32>.size
                for index in 0..<count {
                    let descriptor = start.loadUnaligned(
                        fromByteOffset: index * MemoryLayout<Int32>.size, as: Int32.self)
                    queue.appendRawValue(descriptor)
                }
                arrived += count
            }
            next = endpointmux_cmsg_nxthdr(&msg, cmsg)
        }
        return arrived
    }

    /// One `sendmsg` gathering `iovecs` (at least one byte in all) with an optional
    /// prepared control buffer; `MSG_DONTWAIT` when `nonBlocking`.
    static func sendmsgRetryingEINTR(
        _ fd: Int32,
        iovecs: UnsafeMutableBufferPointer<iovec>,
        control: UnsafeMutableRawBufferPointer?,
        fdCount: Int,
        nonBlocking: Bool
    ) throws(EndpointMuxError) -> Int? {
        var flags: Int32 = nonBlocking ? Int32(MSG_DONTWAIT) : 0
        flags |= Int32(MSG_NOSIGNAL)
        var written: Int
        var failure: Int32 = 0
        repeat {
            var msg = msghdr()
            msg.msg_iov = iovecs.baseAddress
            msg.msg_iovlen = numericCast(iovecs.count)
            if let control {
                msg.msg_control = control.baseAddress
                msg.msg_controllen = numericCast(control.count)
            }
            written = sendmsg(fd, &msg, flags)
            failure = written < 0 ? errno : 0
        } while written < 0 && failure == EINTR
        guard written >= 0 else {
            if failure == EAGAIN || failure == EWOULDBLOCK { return nil }
            if failure == EINVAL && fdCount > 0 {
                throw .fileDescriptorBatchRejected(count: fdCount, errno: failure)
            }
            throw .system(operation: "sendmsg", errno: failure)
        }
        return written
    }

    /// One `sendmsg` gathering `chunks` (at least one byte in all) with `fileDescriptors`
    /// attached to the first byte; `MSG_DONTWAIT` when `nonBlocking`. Same results as
    /// ``send(to:bytes:fileDescriptors:)``.
    static func send(
        to fd: Int32,
        chunks: [UnsafeRawBufferPointer],
        fileDescriptors: some Collection<Int32>,
        nonBlocking: Bool
    ) throws(EndpointMuxError) -> Int? {
        let fdCount = fileDescriptors.count
        guard fdCount <= maxFileDescriptorsPerCall else {
            throw .invalidArgument("\(fdCount) file descriptors in one sendmsg (at most \(maxFileDescriptorsPerCall))")
        }
        let result: Result<Int?, EndpointMuxError> = withUnsafeTemporaryAllocation(
            of: iovec.self, capacity: chunks.count
        ) { iovecs in
            for (index, chunk) in chunks.enumerated() {
                iovecs.initializeElement(
                    at: index,
                    to: iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: chunk.baseAddress),
                        iov_len: numericCast(chunk.count)))
            }
            guard fdCount > 0 else {
                return Result { () throws(EndpointMuxError) in
                    try sendmsgRetryingEINTR(fd, iovecs: iovecs, control: nil, fdCount: 0, nonBlocking: nonBlocking)
                }
            }
            let dataLength = fdCount * MemoryLayout<Int32>.size
            let space = endpointmux_cmsg_space(dataLength)
            return withUnsafeTemporaryAllocation(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment) {
                control in
                control.initializeMemory(as: UInt8.self, repeating: 0)
                var msg = msghdr()
                msg.msg_control = control.baseAddress
                msg.msg_controllen = numericCast(space)
                guard let cmsg = endpointmux_cmsg_firsthdr(&msg), let data = endpointmux_cmsg_data(cmsg) else {
                    return .failure(.invalidArgument("control buffer of \(space) bytes holds no cmsghdr"))
                }
                cmsg.pointee.cmsg_len = numericCast(endpointmux_cmsg_len(dataLength))
                cmsg.pointee.cmsg_level = SOL_SOCKET
                cmsg.pointee.cmsg_type = Int32(SCM_RIGHTS)
                let raw = UnsafeMutableRawPointer(data)
                var stored = 0
                for descriptor in fileDescriptors where stored < fdCount {
                    raw.storeBytes(of: descriptor, toByteOffset: stored * MemoryLayout<Int32>.size, as: Int32.self)
                    stored += 1
                }
                return Result { () throws(EndpointMuxError) in
                    try sendmsgRetryingEINTR(
                        fd, iovecs: iovecs, control: UnsafeMutableRawBufferPointer(control),
                        fdCount: fdCount, nonBlocking: nonBlocking)
                }
            }
        }
        return try result.get()
    }

    /// `poll(2)` on one descriptor for `events`, retrying `EINTR` with the remaining time.
    private static func wait(_ fd: Int32, events: Int16, timeout: Duration?) throws(EndpointMuxError) -> Bool {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        while true {
            var milliseconds: Int32 = -1
            if let deadline {
                milliseconds = pollMilliseconds(until: deadline, now: clock.now)
            }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready < 0 {
                let failure = errno
                if failure == EINTR { continue }
                throw .system(operation: "poll", errno: failure)
            }
            if ready == 0 {
                // poll rounds to whole milliseconds; only report a timeout once it has passed.
                if let deadline, clock.now < deadline { continue }
                return false
            }
            if descriptor.revents & Int16(truncatingIfNeeded: POLLNVAL) != 0 {
                throw .system(operation: "poll", errno: EBADF)
            }
            return true
        }
    }

    /// Milliseconds from `now` to `deadline` for `poll`, rounded up so that a sub-millisecond
    /// remainder waits instead of spinning; 0 once the deadline has passed.
    static func pollMilliseconds(until deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Int32 {
        MonotonicInstant(deadline).pollTimeout(now: MonotonicInstant(now))
    }
}

/// A reusable `recvmsg` control buffer: the allocation-free way to call
/// ``SocketIO/receive(from:into:fileDescriptors:maxFileDescriptors:)`` in a loop.
///
/// Holds one `cmsghdr`-aligned buffer with room for ``maxFileDescriptors`` descriptors,
/// allocated once in `init` and freed in `deinit`. It is `~Copyable` so that exactly one
/// owner uses the buffer at a time; move it to the thread or task that reads the socket.
package struct SocketReceiver: ~Copyable, @unchecked Sendable {
    /// Room in the control buffer, in descriptors. More in one `recvmsg` is
    /// ``EndpointMuxError/controlTruncated(received:)``.
    package let maxFileDescriptors: Int
    private let control: UnsafeMutableRawBufferPointer

    /// Allocates a control buffer for `maxFileDescriptors` descriptors, clamped to 0 through
    /// ``SocketIO/maxFileDescriptorsPerCall``. With 0, any descriptor the peer sends is
    /// reported as ``EndpointMuxError/controlTruncated(received:)``.
    package init(maxFileDescriptors: Int = SocketIO.defaultMaxFileDescriptorsPerReceive) {
        self.maxFileDescriptors = Swift.max(0, Swift.min(maxFileDescriptors, SocketIO.maxFileDescriptorsPerCall))
        self.control = .allocate(
            byteCount: SocketIO.controlSpace(forFileDescriptors: self.maxFileDescriptors),
            alignment: MemoryLayout<cmsghdr>.alignment)
    }

    /// Same contract as ``SocketIO/receive(from:into:fileDescriptors:maxFileDescriptors:)``,
    /// using this receiver's buffer.
    package mutating func receive(
        from fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        fileDescriptors: inout FileDescriptorQueue
    ) throws(EndpointMuxError) -> SocketIO.ReceiveOutcome {
        try SocketIO.receive(from: fd, into: buffer, fileDescriptors: &fileDescriptors, control: control)
    }

    /// The same with `MSG_DONTWAIT`: never blocks, whatever the socket's mode.
    mutating func receiveWithoutWaiting(
        from fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        fileDescriptors: inout FileDescriptorQueue
    ) throws(EndpointMuxError) -> SocketIO.ReceiveOutcome {
        try SocketIO.receive(
            from: fd, into: buffer, fileDescriptors: &fileDescriptors, control: control,
            nonBlocking: true)
    }

    deinit {
        control.deallocate()
    }
}
