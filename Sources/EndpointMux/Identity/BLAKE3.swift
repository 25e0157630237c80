internal import CBLAKE3SIMD
import Glibc

/// The BLAKE3 hash function (default hashing mode, 32-byte output), in pure Swift.
///
/// `BLAKE3` is an incremental hasher with value semantics: feed it bytes with
/// ``update(_:)-(UnsafeRawBufferPointer)`` and read the digest with ``finalize()``.
/// A copy of a hasher continues independently of the original. Hashing does not
/// allocate: the whole state, including the chaining-value stack of the hash tree, is
/// stored inline (about 2.2 KB, so copies are not free).
///
/// Use the static ``hash(_:)-([UInt8])`` and ``hash(fileAtPath:)`` functions for one-shot
/// hashing. Digests match the reference implementation (`b3sum`).
@_spi(Internals) public struct BLAKE3: Sendable {
    /// The length in bytes of a digest returned by ``finalize()`` and the `hash` functions: 32.
    @_spi(Internals) public static let outputByteCount = 32

    // MARK: State

    /// Chaining value of the chunk being hashed (IV before its first block is compressed).
    private var chunkCV: ChainingValue = .iv
    /// Index of the chunk being hashed; also the number of chunks completed before it.
    private var chunkCounter: UInt64 = 0
    /// Number of blocks of the current chunk already compressed into `chunkCV` (0...15).
    private var blocksCompressed: UInt32 = 0
    /// Bytes of the current block not yet compressed (the last block is kept here until
    /// more input arrives, because it may need the `CHUNK_END`/`ROOT` flags).
    private var buffer: Bytes64 = Octet(0, 0, 0, 0, 0, 0, 0, 0)
    /// Number of valid bytes in `buffer` (0...64).
    private var bufferLength: Int = 0
    /// Chaining values of completed subtrees, left to right. The stack holds at most
    /// popcount(chunks completed) ≤ 64 entries, so 64 slots can never overflow.
    private var stack: Octet<Octet<ChainingValue>>
    /// Number of entries in `stack`.
    private var stackLength: Int = 0
    /// Whether whole chunks go through the AVX2 code (`CBLAKE3SIMD`) instead of the
    /// portable Swift SIMD4 code.
    private let usesAVX2: Bool
    /// Whether subtrees of 16 chunks or more go through the AVX-512 code (implies `usesAVX2`).
    private let usesAVX512: Bool

    /// The code paths a hasher can use for whole chunks.
    @_spi(Internals) public enum Implementation: Sendable, CaseIterable {
        /// Swift only: four chunks at a time in `SIMD4<UInt32>` lanes (SSE2 / NEON).
        case portable
        /// Eight chunks at a time with AVX2 (x86-64 CPUs that have it), subtrees of up to
        /// 256 chunks hashed in C.
        case avx2
        /// Sixteen chunks at a time with AVX-512F for subtrees of 16 to 256 chunks, AVX2 for
        /// groups of eight.
        case avx512

        /// Whether this CPU can run the implementation.
        @_spi(Internals) public var isAvailable: Bool {
            switch self {
            case .portable: return true
            case .avx2: return BLAKE3.avx2Available
            case .avx512: return BLAKE3.avx2Available && BLAKE3.avx512Available
            }
        }
    }

    /// Checked once per process.
    private static let avx2Available: Bool = endpointmux_blake3_avx2_available() != 0
    private static let avx512Available: Bool = endpointmux_blake3_avx512_available() != 0

    /// The fastest implementation this CPU runs.
    @_spi(Internals) public static var bestImplementation: Implementation {
        Implementation.avx512.isAvailable ? .avx512 : avx2Available ? .avx2 : .portable
    }

    /// Creates a hasher in the initial state (the digest of no input).
    @_spi(Internals) public init() {
        self.init(implementation: Self.bestImplementation)
    }

    /// Creates a hasher that uses `implementation` (the portable one when this CPU cannot
    /// run it). Every implementation gives the same digests; tests compare them.
    @_spi(Internals) public init(implementation: Implementation) {
        let iv = ChainingValue.iv
        let eight = Octet(iv, iv, iv, iv, iv, iv, iv, iv)
        stack = Octet(eight, eight, eight, eight, eight, eight, eight, eight)
        let usable = implementation.isAvailable ? implementation : .portable
        usesAVX2 = usable != .portable
        usesAVX512 = usable == .avx512
    }

    // MARK: Input

    /// Appends `bytes` to the hashed input. Any split of the input into `update` calls
    /// gives the same digest.
    @_spi(Internals) public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var pointer = base
        var remaining = bytes.count

        while remaining > 0 {
            if bufferLength == Self.blockLength {
                // More input follows, so the buffered block is not the chunk's last.
                if blocksCompressed == Self.blocksPerChunk - 1 {
                    var cv = chunkCV
                    Self.compress(&cv, buffer, counter: chunkCounter, blockLength: 64, flags: Self.chunkEnd)
                    addChunk(cv)
                } else {
                    Self.compress(&chunkCV, buffer, counter: chunkCounter, blockLength: 64, flags: startFlag)
                    blocksCompressed += 1
                    bufferLength = 0
                }
            }
            if bufferLength == 0 {
                // Fast paths: whole chunks, then whole blocks, straight from the input.
                // Strictly more than a chunk (block) must remain, so that the last one
                // stays buffered for `finalize`.
                if blocksCompressed == 0 && usesAVX2 {
                    // AVX2 / AVX-512: the largest aligned subtree (8…256 chunks) that leaves
                    // more input behind, or loose chunks up to the next multiple of 8.
                    while remaining > 8 * Self.chunkLength {
                        if chunkCounter % 8 == 0 {
                            var size = 256
                            while size > 8 && (chunkCounter % UInt64(size) != 0 || remaining <= size * Self.chunkLength)
                            {
                                size >>= 1
                            }
                            var cv = ChainingValue.iv
                            let wide = usesAVX512 && size >= 16
                            withUnsafeMutablePointer(to: &cv) { out in
                                out.withMemoryRebound(to: UInt32.self, capacity: 8) {
                                    let input = pointer.assumingMemoryBound(to: UInt8.self)
                                    if wide {
                                        endpointmux_blake3_avx512_subtree(input, size, chunkCounter, $0)
                                    } else {
                                        endpointmux_blake3_avx2_subtree(input, size, chunkCounter, $0)
                                    }
                                }
                            }
                            addSubtree(cv, chunkCount: UInt64(size))
                            pointer += size * Self.chunkLength
                            remaining -= size * Self.chunkLength
                        } else {
                            // Eight chunks hashed, only those up to the next multiple of 8
                            // kept, so the following ones form aligned subtrees again.
                            let keep = 8 - Int(chunkCounter % 8)
                            withUnsafeTemporaryAllocation(of: ChainingValue.self, capacity: 8) { cvs in
                                guard let base = cvs.baseAddress else { preconditionFailure("no stack buffer") }
                                base.withMemoryRebound(to: UInt32.self, capacity: 64) {
                                    endpointmux_blake3_avx2_hash8_chunks(
                                        pointer.assumingMemoryBound(to: UInt8.self), chunkCounter, $0)
                                }
                                for i in 0..<keep { addChunk(base[i]) }
                            }
                            pointer += keep * Self.chunkLength
                            remaining -= keep * Self.chunkLength
                        }
                    }
                }
                if blocksCompressed == 0 {
                    // Sixteen chunks at a time as one subtree (chunks and the first two
                    // parent levels four-wide), where the tree allows it; then four chunks
                    // four-wide; then one at a time.
                    while remaining > 16 * Self.chunkLength && chunkCounter % 16 == 0 {
                        addSubtree(Self.hashSixteenChunks(pointer, counter: chunkCounter), chunkCount: 16)
                        pointer += 16 * Self.chunkLength
                        remaining -= 16 * Self.chunkLength
                    }
                    while remaining > 4 * Self.chunkLength {
                        let cvs = Self.hashFourChunks(pointer, counter: chunkCounter)
                        addChunk(cvs.0); addChunk(cvs.1); addChunk(cvs.2); addChunk(cvs.3)
                        pointer += 4 * Self.chunkLength
                        remaining -= 4 * Self.chunkLength
                    }
                    while remaining > Self.chunkLength {
                        var cv = ChainingValue.iv
                        var offset = 0
                        while offset < Self.chunkLength {
                            let flags =
                                (offset == 0 ? Self.chunkStart : 0)
                                | (offset == Self.chunkLength - Self.blockLength ? Self.chunkEnd : 0)
                            Self.compress(
                                &cv, MessageBlock(loading: pointer + offset), counter: chunkCounter,
                                blockLength: 64, flags: flags)
                            offset += Self.blockLength
                        }
                        addChunk(cv)
                        pointer += Self.chunkLength
                        remaining -= Self.chunkLength
                    }
                }
                while remaining > Self.blockLength && blocksCompressed < Self.blocksPerChunk - 1 {
                    Self.compress(
                        &chunkCV, MessageBlock(loading: pointer), counter: chunkCounter, blockLength: 64,
                        flags: startFlag)
                    blocksCompressed += 1
                    pointer += Self.blockLength
                    remaining -= Self.blockLength
                }
            }
            let take = min(Self.blockLength - bufferLength, remaining)
            if take > 0 {
                let offset = bufferLength
                let source = UnsafeRawBufferPointer(start: pointer, count: take)
                withUnsafeMutableBytes(of: &buffer) { block in
                    UnsafeMutableRawBufferPointer(rebasing: block[offset..<(offset + take)]).copyMemory(from: source)
                }
                bufferLength += take
                pointer += take
                remaining -= take
            }
        }
    }

    /// Appends the bytes of `bytes` to the hashed input. Contiguous collections (such as
    /// `[UInt8]`) are hashed in place; other sequences are staged in small pieces.
    @_spi(Internals) public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { elements in
            update(UnsafeRawBufferPointer(elements))
        }
        if done != nil { return }
        var staging: [UInt8] = []
        staging.reserveCapacity(4096)
        for byte in bytes {
            staging.append(byte)
            if staging.count == 4096 {
                staging.withUnsafeBytes { update($0) }
                staging.removeAll(keepingCapacity: true)
            }
        }
        staging.withUnsafeBytes { update($0) }
    }

    // MARK: Output

    /// Returns the 32-byte digest of all input so far. Does not change the hasher: more
    /// input may be added afterwards, and `finalize` called again.
    @_spi(Internals) public func finalize() -> [UInt8] {
        // The last block of the current chunk, zero-padded.
        var block = buffer
        let used = bufferLength
        withUnsafeMutableBytes(of: &block) { bytes in
            _ = UnsafeMutableRawBufferPointer(rebasing: bytes[used...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
        var output = chunkCV
        var flags = startFlag | Self.chunkEnd
        if stackLength == 0 { flags |= Self.root }
        Self.compress(
            &output, block, counter: chunkCounter, blockLength: UInt32(truncatingIfNeeded: used), flags: flags)

        // Fold the right edge of the tree, from the deepest subtree up to the root.
        var index = stackLength
        while index > 0 {
            index -= 1
            let left = stackEntry(index)
            var parent = ChainingValue.iv
            Self.compress(
                &parent, MessageBlock(left, output), counter: 0, blockLength: 64,
                flags: index == 0 ? Self.parent | Self.root : Self.parent)
            output = parent
        }
        return output.bytes
    }

    /// Returns the 32-byte BLAKE3 digest of `bytes`.
    @_spi(Internals) public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = BLAKE3()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Returns the 32-byte BLAKE3 digest of `bytes`.
    @_spi(Internals) public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// Returns the 32-byte BLAKE3 digest of the contents of the file at `path`.
    ///
    /// The file is read sequentially in 1 MiB pieces through one reusable buffer;
    /// interrupted reads are retried.
    ///
    /// - Throws: ``EndpointMuxError/system(operation:path:errno:)`` with operation `"open"`
    ///   or `"read"` and the failing call's `errno`.
    @_spi(Internals) public static func hash(fileAtPath path: String) throws(EndpointMuxError) -> [UInt8] {
        var descriptor: Int32
        repeat {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else {
            throw .system(operation: "open", path: path, errno: errno)
        }
        defer { _ = close(descriptor) }
        return try hash(fileDescriptor: descriptor, path: path)
    }

    /// The digest of what remains to be read from `descriptor` (read to its end; not
    /// closed). `path` only names the file in errors.
    static func hash(fileDescriptor descriptor: Int32, path: String) throws(EndpointMuxError) -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 64)
        defer { buffer.deallocate() }
        var hasher = BLAKE3()
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            } else if count == 0 {
                return hasher.finalize()
            } else {
                let error = errno
                if error != EINTR {
                    throw .system(operation: "read", path: path, errno: error)
                }
            }
        }
    }

    // MARK: Tree

    private var startFlag: UInt32 { blocksCompressed == 0 ? Self.chunkStart : 0 }

    /// Records the chaining value `cv` of the completed current chunk, merges completed
    /// subtrees, and starts the next chunk.
    private mutating func addChunk(_ cv: ChainingValue) {
        addSubtree(cv, chunkCount: 1)
        chunkCV = .iv
        blocksCompressed = 0
        bufferLength = 0
    }

    /// Records the chaining value `cv` of a complete subtree of `chunkCount` chunks (a
    /// power of two dividing ``chunkCounter``; more input follows it) and merges completed
    /// subtrees.
    private mutating func addSubtree(_ cv: ChainingValue, chunkCount: UInt64) {
        chunkCounter += chunkCount
        var merged = cv
        // One merge per trailing zero bit of the number of completed subtrees of this size.
        var total = chunkCounter / chunkCount
        while total & 1 == 0 {
            stackLength -= 1
            var parent = ChainingValue.iv
            Self.compress(
                &parent, MessageBlock(stackEntry(stackLength), merged), counter: 0,
                blockLength: 64, flags: Self.parent)
            merged = parent
            total >>= 1
        }
        let slot = stackLength
        withUnsafeMutableBytes(of: &stack) { entries in
            entries.storeBytes(
                of: merged, toByteOffset: slot * MemoryLayout<ChainingValue>.stride, as: ChainingValue.self)
        }
        stackLength += 1
    }

    /// The chaining value of the subtree of the 16 whole chunks at `input` (chunk counters
    /// `counter…counter + 15`, `counter` a multiple of 16): chunks and the first two parent
    /// levels four at a time, the last two levels one at a time.
    private static func hashSixteenChunks(_ input: UnsafeRawPointer, counter: UInt64) -> ChainingValue {
        withUnsafeTemporaryAllocation(of: ChainingValue.self, capacity: 16) { cvs in
            guard let base = cvs.baseAddress else { return .iv }
            var i = 0
            while i < 4 {
                let four = hashFourChunks(input + i * 4 * chunkLength, counter: counter &+ UInt64(i * 4))
                (base + 4 * i).initialize(to: four.0); (base + 4 * i + 1).initialize(to: four.1)
                (base + 4 * i + 2).initialize(to: four.2); (base + 4 * i + 3).initialize(to: four.3)
                i += 1
            }
            // 16 chaining values are 8 parent blocks, back to back.
            let raw = UnsafeRawPointer(base)
            let level1a = hashFourParents(raw), level1b = hashFourParents(raw + 4 * blockLength)
            base[0] = level1a.0; base[1] = level1a.1; base[2] = level1a.2; base[3] = level1a.3
            base[4] = level1b.0; base[5] = level1b.1; base[6] = level1b.2; base[7] = level1b.3
            let level2 = hashFourParents(raw)
            var left = ChainingValue.iv, right = ChainingValue.iv
            compress(&left, MessageBlock(level2.0, level2.1), counter: 0, blockLength: 64, flags: parent)
            compress(&right, MessageBlock(level2.2, level2.3), counter: 0, blockLength: 64, flags: parent)
            var root = ChainingValue.iv
            compress(&root, MessageBlock(left, right), counter: 0, blockLength: 64, flags: parent)
            return root
        }
    }

    private func stackEntry(_ index: Int) -> ChainingValue {
        withUnsafeBytes(of: stack) { entries in
            entries.load(fromByteOffset: index * MemoryLayout<ChainingValue>.stride, as: ChainingValue.self)
        }
    }

    // MARK: Compression

    static let chunkLength = 1024
    static let blockLength = 64
    static let blocksPerChunk: UInt32 = 16
    static let blocksPerChunkInt = 16
    private static let readSize = 1 << 20

    static let chunkStart: UInt32 = 1 << 0
    static let chunkEnd: UInt32 = 1 << 1
    static let parent: UInt32 = 1 << 2
    static let root: UInt32 = 1 << 3

    private static func compress(
        _ cv: inout ChainingValue, _ block: Bytes64, counter: UInt64, blockLength: UInt32, flags: UInt32
    ) {
        compress(&cv, MessageBlock(block), counter: counter, blockLength: blockLength, flags: flags)
    }

    /// The BLAKE3 compression function, truncated to its first 8 output words (the new
    /// chaining value): 7 rounds of column and diagonal G mixes over 16 state words.
    ///
    /// The rounds are unrolled, and round r reads the message words through the
    /// permutation applied r - 1 times instead of moving them between rounds.
    static func compress(
        _ cv: inout ChainingValue, _ block: MessageBlock, counter: UInt64, blockLength: UInt32, flags: UInt32
    ) {
        let m0 = block.w0, m1 = block.w1, m2 = block.w2, m3 = block.w3
        let m4 = block.w4, m5 = block.w5, m6 = block.w6, m7 = block.w7
        let m8 = block.w8, m9 = block.w9, m10 = block.w10, m11 = block.w11
        let m12 = block.w12, m13 = block.w13, m14 = block.w14, m15 = block.w15

        var s0 = cv.h0, s1 = cv.h1, s2 = cv.h2, s3 = cv.h3
        var s4 = cv.h4, s5 = cv.h5, s6 = cv.h6, s7 = cv.h7
        var s8: UInt32 = 0x6A09_E667, s9: UInt32 = 0xBB67_AE85
        var s10: UInt32 = 0x3C6E_F372, s11: UInt32 = 0xA54F_F53A
        var s12 = UInt32(truncatingIfNeeded: counter)
        var s13 = UInt32(truncatingIfNeeded: counter &>> 32)
        var s14 = blockLength
        var s15 = flags

        // Round 1: message words [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15].
        s0 = s0 &+ s4 &+ m0; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m1; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m2; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m3; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m4; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m5; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m6; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m7; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m8; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m9; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m10; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m11; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m12; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m13; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m14; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m15; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 2: message words [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8].
        s0 = s0 &+ s4 &+ m2; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m6; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m3; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m10; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m7; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m0; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m4; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m13; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m1; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m11; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m12; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m5; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m9; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m14; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m15; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m8; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 3: message words [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1].
        s0 = s0 &+ s4 &+ m3; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m4; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m10; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m12; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m13; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m2; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m7; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m14; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m6; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m5; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m9; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m0; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m11; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m15; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m8; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m1; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 4: message words [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6].
        s0 = s0 &+ s4 &+ m10; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m7; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m12; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m9; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m14; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m3; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m13; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m15; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m4; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m0; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m11; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m2; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m5; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m8; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m1; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m6; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 5: message words [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4].
        s0 = s0 &+ s4 &+ m12; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m13; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m9; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m11; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m15; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m10; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m14; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m8; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m7; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m2; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m5; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m3; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m0; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m1; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m6; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m4; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 6: message words [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7].
        s0 = s0 &+ s4 &+ m9; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m14; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m11; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m5; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m8; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m12; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m15; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m1; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m13; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m3; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m0; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m10; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m2; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m6; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m4; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m7; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        // Round 7: message words [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13].
        s0 = s0 &+ s4 &+ m11; s12 ^= s0; s12 = (s12 &>> 16) | (s12 &<< 16)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 12) | (s4 &<< 20)
        s0 = s0 &+ s4 &+ m15; s12 ^= s0; s12 = (s12 &>> 8) | (s12 &<< 24)
        s8 = s8 &+ s12; s4 ^= s8; s4 = (s4 &>> 7) | (s4 &<< 25)
        s1 = s1 &+ s5 &+ m5; s13 ^= s1; s13 = (s13 &>> 16) | (s13 &<< 16)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 12) | (s5 &<< 20)
        s1 = s1 &+ s5 &+ m0; s13 ^= s1; s13 = (s13 &>> 8) | (s13 &<< 24)
        s9 = s9 &+ s13; s5 ^= s9; s5 = (s5 &>> 7) | (s5 &<< 25)
        s2 = s2 &+ s6 &+ m1; s14 ^= s2; s14 = (s14 &>> 16) | (s14 &<< 16)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 12) | (s6 &<< 20)
        s2 = s2 &+ s6 &+ m9; s14 ^= s2; s14 = (s14 &>> 8) | (s14 &<< 24)
        s10 = s10 &+ s14; s6 ^= s10; s6 = (s6 &>> 7) | (s6 &<< 25)
        s3 = s3 &+ s7 &+ m8; s15 ^= s3; s15 = (s15 &>> 16) | (s15 &<< 16)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 12) | (s7 &<< 20)
        s3 = s3 &+ s7 &+ m6; s15 ^= s3; s15 = (s15 &>> 8) | (s15 &<< 24)
        s11 = s11 &+ s15; s7 ^= s11; s7 = (s7 &>> 7) | (s7 &<< 25)

        s0 = s0 &+ s5 &+ m14; s15 ^= s0; s15 = (s15 &>> 16) | (s15 &<< 16)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 12) | (s5 &<< 20)
        s0 = s0 &+ s5 &+ m10; s15 ^= s0; s15 = (s15 &>> 8) | (s15 &<< 24)
        s10 = s10 &+ s15; s5 ^= s10; s5 = (s5 &>> 7) | (s5 &<< 25)
        s1 = s1 &+ s6 &+ m2; s12 ^= s1; s12 = (s12 &>> 16) | (s12 &<< 16)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 12) | (s6 &<< 20)
        s1 = s1 &+ s6 &+ m12; s12 ^= s1; s12 = (s12 &>> 8) | (s12 &<< 24)
        s11 = s11 &+ s12; s6 ^= s11; s6 = (s6 &>> 7) | (s6 &<< 25)
        s2 = s2 &+ s7 &+ m3; s13 ^= s2; s13 = (s13 &>> 16) | (s13 &<< 16)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 12) | (s7 &<< 20)
        s2 = s2 &+ s7 &+ m4; s13 ^= s2; s13 = (s13 &>> 8) | (s13 &<< 24)
        s8 = s8 &+ s13; s7 ^= s8; s7 = (s7 &>> 7) | (s7 &<< 25)
        s3 = s3 &+ s4 &+ m7; s14 ^= s3; s14 = (s14 &>> 16) | (s14 &<< 16)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 12) | (s4 &<< 20)
        s3 = s3 &+ s4 &+ m13; s14 ^= s3; s14 = (s14 &>> 8) | (s14 &<< 24)
        s9 = s9 &+ s14; s4 ^= s9; s4 = (s4 &>> 7) | (s4 &<< 25)

        cv.h0 = s0 ^ s8; cv.h1 = s1 ^ s9; cv.h2 = s2 ^ s10; cv.h3 = s3 ^ s11
        cv.h4 = s4 ^ s12; cv.h5 = s5 ^ s13; cv.h6 = s6 ^ s14; cv.h7 = s7 ^ s15
    }
}

// MARK: - Storage

/// Eight values of one type, stored inline.
private typealias Octet<T> = (T, T, T, T, T, T, T, T)

/// 64 raw bytes (one block), stored inline.
private typealias Bytes64 = Octet<UInt64>

/// Eight 32-bit words: a chaining value, the key (IV) or a 32-byte output.
struct ChainingValue: Sendable {
    var h0, h1, h2, h3, h4, h5, h6, h7: UInt32

    /// The BLAKE3 IV (the SHA-256 IV), the key of the default hashing mode.
    static let iv = ChainingValue(
        h0: 0x6A09_E667, h1: 0xBB67_AE85, h2: 0x3C6E_F372, h3: 0xA54F_F53A,
        h4: 0x510E_527F, h5: 0x9B05_688C, h6: 0x1F83_D9AB, h7: 0x5BE0_CD19
    )

    /// The words as 32 little-endian bytes.
    var bytes: [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(32)
        for word in [h0, h1, h2, h3, h4, h5, h6, h7] {
            result.append(UInt8(truncatingIfNeeded: word))
            result.append(UInt8(truncatingIfNeeded: word &>> 8))
            result.append(UInt8(truncatingIfNeeded: word &>> 16))
            result.append(UInt8(truncatingIfNeeded: word &>> 24))
        }
        return result
    }
}

/// The 16 message words of one block.
struct MessageBlock {
    var w0, w1, w2, w3, w4, w5, w6, w7: UInt32
    var w8, w9, w10, w11, w12, w13, w14, w15: UInt32

    /// Loads 64 bytes at `pointer` (any alignment) as 16 little-endian words.
    @inline(__always)
    init(loading pointer: UnsafeRawPointer) {
        @inline(__always)
        func word(_ index: Int) -> UInt32 {
            UInt32(littleEndian: pointer.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self))
        }
        w0 = word(0); w1 = word(1); w2 = word(2); w3 = word(3)
        w4 = word(4); w5 = word(5); w6 = word(6); w7 = word(7)
        w8 = word(8); w9 = word(9); w10 = word(10); w11 = word(11)
        w12 = word(12); w13 = word(13); w14 = word(14); w15 = word(15)
    }

    /// Reads the 64 bytes of `bytes` as 16 little-endian words.
    @inline(__always)
    fileprivate init(_ bytes: Bytes64) {
        let q0 = UInt64(littleEndian: bytes.0), q1 = UInt64(littleEndian: bytes.1)
        let q2 = UInt64(littleEndian: bytes.2), q3 = UInt64(littleEndian: bytes.3)
        let q4 = UInt64(littleEndian: bytes.4), q5 = UInt64(littleEndian: bytes.5)
        let q6 = UInt64(littleEndian: bytes.6), q7 = UInt64(littleEndian: bytes.7)
        w0 = UInt32(truncatingIfNeeded: q0); w1 = UInt32(truncatingIfNeeded: q0 &>> 32)
        w2 = UInt32(truncatingIfNeeded: q1); w3 = UInt32(truncatingIfNeeded: q1 &>> 32)
        w4 = UInt32(truncatingIfNeeded: q2); w5 = UInt32(truncatingIfNeeded: q2 &>> 32)
        w6 = UInt32(truncatingIfNeeded: q3); w7 = UInt32(truncatingIfNeeded: q3 &>> 32)
        w8 = UInt32(truncatingIfNeeded: q4); w9 = UInt32(truncatingIfNeeded: q4 &>> 32)
        w10 = UInt32(truncatingIfNeeded: q5); w11 = UInt32(truncatingIfNeeded: q5 &>> 32)
        w12 = UInt32(truncatingIfNeeded: q6); w13 = UInt32(truncatingIfNeeded: q6 &>> 32)
        w14 = UInt32(truncatingIfNeeded: q7); w15 = UInt32(truncatingIfNeeded: q7 &>> 32)
    }

    /// The block of a parent node: the left child's chaining value, then the right's.
    @inline(__always)
    init(_ left: ChainingValue, _ right: ChainingValue) {
        w0 = left.h0; w1 = left.h1; w2 = left.h2; w3 = left.h3
        w4 = left.h4; w5 = left.h5; w6 = left.h6; w7 = left.h7
        w8 = right.h0; w9 = right.h1; w10 = right.h2; w11 = right.h3
        w12 = right.h4; w13 = right.h5; w14 = right.h6; w15 = right.h7
    }
}
