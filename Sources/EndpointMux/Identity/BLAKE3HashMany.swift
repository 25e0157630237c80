/// BLAKE3's `hash_many`: the compressions of four independent inputs (four whole chunks,
/// or four parent nodes) run side by side, one in each lane of `SIMD4<UInt32>` vectors.
///
/// State word `i` of the four compressions lives in one vector, so every step of the G
/// function is one vector instruction for four inputs. Message words are loaded four at a
/// time from each input and transposed (4×4) into the same word-per-vector layout.
/// `SIMD4<UInt32>` needs only the x86-64 baseline (SSE2) or NEON, so no runtime dispatch
/// is needed.
extension BLAKE3 {
    typealias Lanes = SIMD4<UInt32>

    /// The chaining values of four whole 1 KiB chunks at `input`, `input + 1024`, …,
    /// whose chunk counters are `counter`, `counter + 1`, `counter + 2`, `counter + 3`.
    @inline(__always)
    static func hashFourChunks(
        _ input: UnsafeRawPointer, counter: UInt64
    ) -> (ChainingValue, ChainingValue, ChainingValue, ChainingValue) {
        var h = FourChainingValues(key: .iv)
        let counters = SIMD4<UInt64>(counter, counter &+ 1, counter &+ 2, counter &+ 3)
        let counterLow = Lanes(truncatingIfNeeded: counters)
        let counterHigh = Lanes(truncatingIfNeeded: counters &>> 32)
        var block = 0
        while block < blocksPerChunkInt {
            let flags: UInt32 = (block == 0 ? chunkStart : 0) | (block == blocksPerChunkInt - 1 ? chunkEnd : 0)
            let m = FourBlocks(loading: input + block * blockLength, stride: chunkLength, littleEndian: true)
            compressFour(&h, m, counterLow: counterLow, counterHigh: counterHigh, flags: Lanes(repeating: flags))
            block += 1
        }
        return h.chainingValues
    }

    /// The chaining values of four parent nodes whose 64-byte blocks (left child's chaining
    /// value, then the right's) lie back to back at `input`.
    @inline(__always)
    static func hashFourParents(
        _ input: UnsafeRawPointer
    ) -> (ChainingValue, ChainingValue, ChainingValue, ChainingValue) {
        var h = FourChainingValues(key: .iv)
        let m = FourBlocks(loading: input, stride: blockLength, littleEndian: false)
        compressFour(
            &h, m, counterLow: Lanes(repeating: 0), counterHigh: Lanes(repeating: 0), flags: Lanes(repeating: parent))
        return h.chainingValues
    }

    /// Four compressions of full 64-byte blocks, truncated to the new chaining values.
    @inline(__always)
    static func compressFour(
        _ h: inout FourChainingValues, _ m: FourBlocks, counterLow: Lanes, counterHigh: Lanes, flags: Lanes
    ) {
        var s0 = h.h0, s1 = h.h1, s2 = h.h2, s3 = h.h3
        var s4 = h.h4, s5 = h.h5, s6 = h.h6, s7 = h.h7
        var s8 = Lanes(repeating: 0x6A09_E667), s9 = Lanes(repeating: 0xBB67_AE85)
        var s10 = Lanes(repeating: 0x3C6E_F372), s11 = Lanes(repeating: 0xA54F_F53A)
        var s12 = counterLow, s13 = counterHigh
        var s14 = Lanes(repeating: UInt32(blockLength)), s15 = flags

        // The rotation amounts come from memory the optimiser cannot see into (a global
        // with package linkage), each right/left pair loaded separately: given constants,
        // LLVM fuses the shifts into a funnel shift that it lowers lane by lane on SSE2
        // (extract, `rol`, insert: 5× slower); given opaque uniform counts, it emits two
        // `psrld`/`pslld` and a `por`.
        let r = rotationAmounts
        let r16 = r.r16, l16 = r.l16, r12 = r.r12, l20 = r.l20, r8 = r.r8, l24 = r.l24, r7 = r.r7, l25 = r.l25
        @inline(__always)
        func g(_ a: inout Lanes, _ b: inout Lanes, _ c: inout Lanes, _ d: inout Lanes, _ x: Lanes, _ y: Lanes) {
            a = a &+ b &+ x; d ^= a; d = (d &>> r16) | (d &<< l16)
            c = c &+ d; b ^= c; b = (b &>> r12) | (b &<< l20)
            a = a &+ b &+ y; d ^= a; d = (d &>> r8) | (d &<< l24)
            c = c &+ d; b ^= c; b = (b &>> r7) | (b &<< l25)
        }

        @inline(__always)
        func round(_ m: FourBlocks) {
            g(&s0, &s4, &s8, &s12, m.w0, m.w1)
            g(&s1, &s5, &s9, &s13, m.w2, m.w3)
            g(&s2, &s6, &s10, &s14, m.w4, m.w5)
            g(&s3, &s7, &s11, &s15, m.w6, m.w7)
            g(&s0, &s5, &s10, &s15, m.w8, m.w9)
            g(&s1, &s6, &s11, &s12, m.w10, m.w11)
            g(&s2, &s7, &s8, &s13, m.w12, m.w13)
            g(&s3, &s4, &s9, &s14, m.w14, m.w15)
        }

        var words = m
        round(words)
        words = words.permuted; round(words)
        words = words.permuted; round(words)
        words = words.permuted; round(words)
        words = words.permuted; round(words)
        words = words.permuted; round(words)
        words = words.permuted; round(words)

        h.h0 = s0 ^ s8; h.h1 = s1 ^ s9; h.h2 = s2 ^ s10; h.h3 = s3 ^ s11
        h.h4 = s4 ^ s12; h.h5 = s5 ^ s13; h.h6 = s6 ^ s14; h.h7 = s7 ^ s15
    }
}

/// BLAKE3's rotation amounts (right, then the matching left shift), read at run time; see
/// ``BLAKE3/compressFour(_:_:counterLow:counterHigh:flags:)``. Never written.
struct RotationAmounts {
    var r16: Lanes, l16: Lanes, r12: Lanes, l20: Lanes, r8: Lanes, l24: Lanes, r7: Lanes, l25: Lanes
    typealias Lanes = BLAKE3.Lanes
}

@usableFromInline nonisolated(unsafe) var blake3RotationAmountsStorage:
    (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (16, 16, 12, 20, 8, 24, 7, 25)

/// The rotation amounts as uniform vectors.
@inline(__always)
var rotationAmounts: RotationAmounts {
    let a = blake3RotationAmountsStorage
    return RotationAmounts(
        r16: .init(repeating: a.0), l16: .init(repeating: a.1), r12: .init(repeating: a.2),
        l20: .init(repeating: a.3), r8: .init(repeating: a.4), l24: .init(repeating: a.5),
        r7: .init(repeating: a.6), l25: .init(repeating: a.7))
}

/// Four chaining values, word `i` of each in lane order in vector `h<i>`.
struct FourChainingValues {
    var h0, h1, h2, h3, h4, h5, h6, h7: BLAKE3.Lanes

    @inline(__always)
    init(key: ChainingValue) {
        h0 = .init(repeating: key.h0); h1 = .init(repeating: key.h1)
        h2 = .init(repeating: key.h2); h3 = .init(repeating: key.h3)
        h4 = .init(repeating: key.h4); h5 = .init(repeating: key.h5)
        h6 = .init(repeating: key.h6); h7 = .init(repeating: key.h7)
    }

    /// The four chaining values, lane 0 first.
    @inline(__always)
    var chainingValues: (ChainingValue, ChainingValue, ChainingValue, ChainingValue) {
        @inline(__always)
        func lane(_ i: Int) -> ChainingValue {
            ChainingValue(h0: h0[i], h1: h1[i], h2: h2[i], h3: h3[i], h4: h4[i], h5: h5[i], h6: h6[i], h7: h7[i])
        }
        return (lane(0), lane(1), lane(2), lane(3))
    }
}

/// The 16 message words of four blocks, word `i` of each in lane order in vector `w<i>`.
struct FourBlocks {
    var w0, w1, w2, w3, w4, w5, w6, w7: BLAKE3.Lanes
    var w8, w9, w10, w11, w12, w13, w14, w15: BLAKE3.Lanes

    @inline(__always)
    init(
        _ w0: BLAKE3.Lanes, _ w1: BLAKE3.Lanes, _ w2: BLAKE3.Lanes, _ w3: BLAKE3.Lanes,
        _ w4: BLAKE3.Lanes, _ w5: BLAKE3.Lanes, _ w6: BLAKE3.Lanes, _ w7: BLAKE3.Lanes,
        _ w8: BLAKE3.Lanes, _ w9: BLAKE3.Lanes, _ w10: BLAKE3.Lanes, _ w11: BLAKE3.Lanes,
        _ w12: BLAKE3.Lanes, _ w13: BLAKE3.Lanes, _ w14: BLAKE3.Lanes, _ w15: BLAKE3.Lanes
    ) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
        self.w4 = w4; self.w5 = w5; self.w6 = w6; self.w7 = w7
        self.w8 = w8; self.w9 = w9; self.w10 = w10; self.w11 = w11
        self.w12 = w12; self.w13 = w13; self.w14 = w14; self.w15 = w15
    }

    /// Loads the 64-byte blocks at `input`, `input + stride`, `input + 2·stride`,
    /// `input + 3·stride` (any alignment) and transposes them. The words are little-endian
    /// bytes (input data) when `littleEndian`, else native words (chaining values).
    @inline(__always)
    init(loading input: UnsafeRawPointer, stride: Int, littleEndian: Bool) {
        @inline(__always)
        func load(_ lane: Int, _ quarter: Int) -> BLAKE3.Lanes {
            let words = input.loadUnaligned(fromByteOffset: lane * stride + quarter * 16, as: BLAKE3.Lanes.self)
            return littleEndian ? BLAKE3.Lanes(littleEndianWords: words) : words
        }
        @inline(__always)
        func transpose(_ q: Int) -> (BLAKE3.Lanes, BLAKE3.Lanes, BLAKE3.Lanes, BLAKE3.Lanes) {
            let a = load(0, q), b = load(1, q), c = load(2, q), d = load(3, q)
            // unpacklo/unpackhi pairs, then 64-bit halves: a 4×4 transpose.
            let ab0 = BLAKE3.Lanes(a[0], b[0], a[1], b[1]), ab1 = BLAKE3.Lanes(a[2], b[2], a[3], b[3])
            let cd0 = BLAKE3.Lanes(c[0], d[0], c[1], d[1]), cd1 = BLAKE3.Lanes(c[2], d[2], c[3], d[3])
            return (
                BLAKE3.Lanes(lowHalf: ab0.lowHalf, highHalf: cd0.lowHalf),
                BLAKE3.Lanes(lowHalf: ab0.highHalf, highHalf: cd0.highHalf),
                BLAKE3.Lanes(lowHalf: ab1.lowHalf, highHalf: cd1.lowHalf),
                BLAKE3.Lanes(lowHalf: ab1.highHalf, highHalf: cd1.highHalf)
            )
        }
        (w0, w1, w2, w3) = transpose(0)
        (w4, w5, w6, w7) = transpose(1)
        (w8, w9, w10, w11) = transpose(2)
        (w12, w13, w14, w15) = transpose(3)
    }

    /// The words in the order of the next round (BLAKE3's message permutation).
    @inline(__always)
    var permuted: FourBlocks {
        FourBlocks(w2, w6, w3, w10, w7, w0, w4, w13, w1, w11, w12, w5, w9, w14, w15, w8)
    }
}

extension SIMD4 where Scalar == UInt32 {
    /// Lanes read as little-endian words (a no-op on little-endian machines).
    @inline(__always)
    init(littleEndianWords raw: SIMD4<UInt32>) {
        #if _endian(little)
        self = raw
        #else
        self.init(raw[0].byteSwapped, raw[1].byteSwapped, raw[2].byteSwapped, raw[3].byteSwapped)
        #endif
    }
}
