/// Ready-made detectors for common legacy protocols. Each is a pure function of the
/// buffered bytes and says how it decides with too few bytes.
extension LegacyDetector {
    /// Legacy when the buffer starts with `prefix`. With fewer bytes than the prefix:
    /// need more while what arrived matches the prefix so far, otherwise not legacy.
    public static func magicPrefix(_ prefix: [UInt8]) -> LegacyDetector {
        LegacyDetector { bytes in
            let n = min(bytes.count, prefix.count)
            for i in 0..<n where bytes[i] != prefix[i] { return .notLegacy }
            return n == prefix.count ? .legacy : .needMoreBytes
        }
    }

    /// Width of a length prefix.
    public enum LengthWidth: Int, Sendable { case u16 = 2, u32 = 4 }
    /// Byte order of a length prefix.
    public enum ByteOrder: Sendable { case littleEndian, bigEndian }

    /// Legacy when the buffer starts with a `width`-byte length in `order` whose value is
    /// plausible (`plausible.contains(length)`). With fewer than `width` bytes: need more,
    /// unless the bytes seen already put every possible length outside `plausible`
    /// (then not legacy). Choose `plausible` tight: a v1 frame (`01 …`) read as a length
    /// is legacy whenever it falls inside, because the detector wins ties.
    public static func lengthPrefixed(
        width: LengthWidth, order: ByteOrder, plausible: ClosedRange<UInt32>
    ) -> LegacyDetector {
        LegacyDetector { bytes in
            let w = width.rawValue
            let available = min(bytes.count, w)
            // The smallest and largest lengths still possible given the bytes seen.
            var low: UInt64 = 0
            var high: UInt64 = 0
            for i in 0..<w {
                let shift: UInt64 = order == .littleEndian ? UInt64(8 * i) : UInt64(8 * (w - 1 - i))
                if i < available {
                    low |= UInt64(bytes[i]) << shift
                    high |= UInt64(bytes[i]) << shift
                } else {
                    high |= UInt64(0xFF) << shift
                }
            }
            if high < UInt64(plausible.lowerBound) || low > UInt64(plausible.upperBound) { return .notLegacy }
            guard available == w else { return .needMoreBytes }
            return plausible.contains(UInt32(low)) ? .legacy : .notLegacy
        }
    }

    /// For line protocols that accept any bytes in a line: legacy unless the buffer starts
    /// with a byte in `excluded` (by default `{`, so JSON-FD control messages reach the
    /// mux) or with what can be a v1 frame. A `0x01`-led buffer is a line when a `\n`
    /// comes within the 5 header bytes or the header's length exceeds
    /// `maxFrameBodyByteCount`; with fewer than 5 bytes and no `\n` it needs more; a
    /// plausible header is not legacy. Any other first byte decides at once.
    public static func lineBased(
        excluded: Set<UInt8> = [UInt8(ascii: "{")], maxFrameBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) -> LegacyDetector {
        // A 256-bit table: one bit test per message instead of hashing into the set.
        var table: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for byte in excluded {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: table.0 |= bit
            case 1: table.1 |= bit
            case 2: table.2 |= bit
            default: table.3 |= bit
            }
        }
        let excludedBits = table
        return LegacyDetector { bytes in
            let first = bytes[0]
            let word: UInt64
            switch first >> 6 {
            case 0: word = excludedBits.0
            case 1: word = excludedBits.1
            case 2: word = excludedBits.2
            default: word = excludedBits.3
            }
            if word & (UInt64(1) << UInt64(first & 63)) != 0 { return .notLegacy }
            guard first == V1Framing.framingByte else { return .legacy }
            let header = V1Framing.headerByteCount
            if bytes.prefix(header).contains(UInt8(ascii: "\n")) { return .legacy }
            guard bytes.count >= header else { return .needMoreBytes }
            let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
            return UInt64(length) > UInt64(maxFrameBodyByteCount) ? .legacy : .notLegacy
        }
    }

    /// Legacy when the buffer starts with an HTTP/1 request line's method and a space
    /// (`GET `, `POST `, `PUT `, `DELETE `, `HEAD `, `OPTIONS `, `PATCH `, `CONNECT `,
    /// `TRACE `). With fewer bytes: need more while they are a prefix of one of those,
    /// otherwise not legacy.
    public static let httpRequestLine: LegacyDetector = {
        let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"]
            .map { Array(($0 + " ").utf8) }
        return LegacyDetector { bytes in
            var undecided = false
            for method in methods {
                let n = min(bytes.count, method.count)
                var matches = true
                for i in 0..<n where bytes[i] != method[i] { matches = false; break }
                guard matches else { continue }
                if n == method.count { return .legacy }
                undecided = true
            }
            return undecided ? .needMoreBytes : .notLegacy
        }
    }()
}
