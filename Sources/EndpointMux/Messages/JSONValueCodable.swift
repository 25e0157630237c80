// A Codable bridge for JSONValue: any Encodable to a JSONValue tree and any Decodable from
// one, without Foundation. Control params and results can be ordinary Swift types.

// MARK: - Errors

/// Why encoding to or decoding from a ``JSONValue`` failed, and where.
///
/// A code plus context, so new codes can be added without breaking a `switch`: compare
/// ``code`` with the static members of ``Code``.
public struct JSONCodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Compare with the static members; more may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case typeMismatch, keyNotFound, valueNotFound, numberOutOfRange, nonFiniteNumber
            case nestingTooDeep, messageTooLarge, invalidValue, other
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The JSON value has another kind than the Swift type needs (e.g. a string for an `Int`).
        public static let typeMismatch = Code(.typeMismatch)
        /// A required object member is missing.
        public static let keyNotFound = Code(.keyNotFound)
        /// A value is `null` (or an array ran out) where a non-optional value is needed.
        public static let valueNotFound = Code(.valueNotFound)
        /// A number does not fit the Swift type exactly (too large, or a fraction for an integer).
        public static let numberOutOfRange = Code(.numberOutOfRange)
        /// Encoding met a NaN or infinite floating-point value, which JSON cannot carry.
        public static let nonFiniteNumber = Code(.nonFiniteNumber)
        /// More containers nested than `JSONLimits/maxDepth` allows.
        public static let nestingTooDeep = Code(.nestingTooDeep)
        /// The encoded value is larger than `JSONLimits/maxMessageBytes` as compact JSON text.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// The type's own `encode(to:)` or `init(from:)` rejected the value
        /// (`EncodingError.invalidValue`, `DecodingError.dataCorrupted`).
        public static let invalidValue = Code(.invalidValue)
        /// Any other error thrown by the type's own coding code; ``JSONCodingError/detail`` describes it.
        public static let other = Code(.other)

        /// The code's name, e.g. `typeMismatch`.
        public var description: String {
            switch base {
            case .typeMismatch: "typeMismatch"
            case .keyNotFound: "keyNotFound"
            case .valueNotFound: "valueNotFound"
            case .numberOutOfRange: "numberOutOfRange"
            case .nonFiniteNumber: "nonFiniteNumber"
            case .nestingTooDeep: "nestingTooDeep"
            case .messageTooLarge: "messageTooLarge"
            case .invalidValue: "invalidValue"
            case .other: "other"
            }
        }
    }

    /// What kind of failure.
    public var code: Code
    /// Where: `$` for the top-level value, then `.key` for object members and `[i]` for
    /// array elements, e.g. `$.items[2].name`.
    public var codingPath: String
    /// A human-readable account of the failure.
    public var detail: String

    /// Creates an error.
    package init(code: Code, codingPath: String, detail: String) {
        self.code = code
        self.codingPath = codingPath
        self.detail = detail
    }

    init(_ code: Code, _ path: [any CodingKey], _ detail: String) {
        self.init(code: code, codingPath: Self.render(path), detail: detail)
    }

    /// `code at path: detail`.
    public var description: String { "\(code) at \(codingPath): \(detail)" }

    static func render(_ path: [any CodingKey]) -> String {
        var text = "$"
        for key in path {
            if let index = key.intValue, key.stringValue == "Index \(index)" {
                text += "[\(index)]"
            } else {
                text += "." + key.stringValue
            }
        }
        return text
    }

    /// Maps whatever a type's coding code threw to this error type.
    static func wrapping(_ error: any Error) -> JSONCodingError {
        if let error = error as? JSONCodingError { return error }
        if let error = error as? EncodingError {
            switch error {
            case let .invalidValue(value, context):
                return JSONCodingError(
                    .invalidValue, context.codingPath, "\(context.debugDescription) (\(type(of: value)))")
            @unknown default:
                return JSONCodingError(.other, [], "\(error)")
            }
        }
        if let error = error as? DecodingError {
            switch error {
            case let .typeMismatch(type, context):
                return JSONCodingError(
                    .typeMismatch, context.codingPath, "expected \(type): \(context.debugDescription)")
            case let .valueNotFound(type, context):
                return JSONCodingError(
                    .valueNotFound, context.codingPath, "expected \(type): \(context.debugDescription)")
            case let .keyNotFound(key, context):
                return JSONCodingError(.keyNotFound, context.codingPath + [key], context.debugDescription)
            case let .dataCorrupted(context):
                return JSONCodingError(.invalidValue, context.codingPath, context.debugDescription)
            @unknown default:
                return JSONCodingError(.other, [], "\(error)")
            }
        }
        return JSONCodingError(.other, [], "\(error)")
    }
}

// MARK: - Public entry points

/// Encodes any `Encodable` value as a ``JSONValue`` tree, e.g. the `params` of a control
/// request or the `result` of a response.
///
/// Integers become exact decimal numbers, `Double` and `Float` their shortest round-trip
/// text (NaN and infinities are ``JSONCodingError/Code/nonFiniteNumber``), `nil` becomes
/// `null`, keyed containers become objects whose members keep the order they were
/// encoded in, and a ``JSONValue`` inside the value is inserted as it is. The limits the
/// receiving scanner applies hold here too: more than ``JSONLimits/maxDepth`` nested
/// containers is ``JSONCodingError/Code/nestingTooDeep`` (checked while encoding, so a
/// recursive value cannot run away), and a result longer than
/// ``JSONLimits/maxMessageBytes`` as compact text is ``JSONCodingError/Code/messageTooLarge``.
package struct JSONValueEncoder: Sendable {
    /// The limits the result must respect (default: the scanner's, depth 128 and 16 MiB).
    package var limits: JSONLimits
    /// Values made available to the types being encoded through `Encoder.userInfo`.
    package var userInfo: [CodingUserInfoKey: any Sendable]

    /// Creates an encoder with `limits`.
    package init(limits: JSONLimits = JSONLimits(), userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.limits = limits
        self.userInfo = userInfo
    }

    /// Encodes `value`.
    /// - Throws: ``JSONCodingError``.
    package func encode(_ value: some Encodable) throws(JSONCodingError) -> JSONValue {
        let context = EncodingContext(maxDepth: limits.maxDepth, userInfo: userInfo)
        let encoder = TreeEncoder(context: context, box: EncodingBox(), codingPath: [], depth: 0)
        do {
            try encoder.encodeValue(value)
        } catch {
            throw context.failure ?? JSONCodingError.wrapping(error)
        }
        if let failure = context.failure { throw failure }
        let result: JSONValue
        do { result = try encoder.box.materialize(path: []) } catch { throw JSONCodingError.wrapping(error) }
        let size = result.serialized().count
        guard size <= limits.maxMessageBytes else {
            throw JSONCodingError(
                .messageTooLarge, [], "\(size) bytes of JSON text; the limit is \(limits.maxMessageBytes)")
        }
        return result
    }
}

/// Decodes any `Decodable` type from a ``JSONValue`` tree, e.g. the `params` of a
/// received control request.
///
/// Integers must be exact (`1`, `1.0` and `1e2` are accepted for `Int`; `1.5` and
/// out-of-range values are ``JSONCodingError/Code/numberOutOfRange``); floating-point
/// types take any number within their range. Object lookups use the last member of a
/// name, as ``JSONObject`` does. At most ``JSONLimits/maxDepth`` nested containers are
/// opened, so a hand-built tree deeper than the scanner would accept is refused too.
package struct JSONValueDecoder: Sendable {
    /// The limits: only ``JSONLimits/maxDepth`` applies (the tree is already in memory).
    package var limits: JSONLimits
    /// Values made available to the types being decoded through `Decoder.userInfo`.
    package var userInfo: [CodingUserInfoKey: any Sendable]

    /// Creates a decoder with `limits`.
    package init(limits: JSONLimits = JSONLimits(), userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.limits = limits
        self.userInfo = userInfo
    }

    /// Decodes a `T` from `value`.
    /// - Throws: ``JSONCodingError``.
    package func decode<T: Decodable>(_ type: T.Type = T.self, from value: JSONValue) throws(JSONCodingError) -> T {
        let decoder = TreeDecoder(
            value: value, codingPath: [], depth: 0, maxDepth: limits.maxDepth, info: userInfo)
        do {
            return try decoder.decodeValue(T.self)
        } catch {
            throw JSONCodingError.wrapping(error)
        }
    }
}

extension JSONValue {
    /// Encodes `value` with a default `JSONValueEncoder`.
    /// - Throws: ``JSONCodingError``.
    public init(encoding value: some Encodable) throws(JSONCodingError) {
        self = try JSONValueEncoder().encode(value)
    }

    /// Decodes a `T` from this value with a default `JSONValueDecoder`.
    /// - Throws: ``JSONCodingError``.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws(JSONCodingError) -> T {
        try JSONValueDecoder().decode(T.self, from: self)
    }
}

/// `JSONValue` is itself `Codable`: through ``JSONValueEncoder`` and ``JSONValueDecoder``
/// it passes through unchanged (numbers keep their text); through other coders numbers
/// travel as `Int64`, `UInt64` or `Double`.
extension JSONValue: Codable {
    /// Decodes any JSON value the decoder can describe.
    public init(from decoder: any Decoder) throws {
        if let tree = decoder as? TreeDecoder {
            self = tree.value
            return
        }
        if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyCodingKey.self) {
            var members = JSONObject()
            for key in object.allKeys {
                members.append(key: key.stringValue, value: try object.decode(JSONValue.self, forKey: key))
            }
            self = .object(members)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let flag = try? single.decode(Bool.self) {
            self = .bool(flag)
        } else if let integer = try? single.decode(Int64.self) {
            self = .number(JSONNumber(integer))
        } else if let integer = try? single.decode(UInt64.self) {
            self = .number(JSONNumber(integer))
        } else if let double = try? single.decode(Double.self), let number = JSONNumber(double) {
            self = .number(number)
        } else {
            self = .string(try single.decode(String.self))
        }
    }

    /// Encodes this value; through `JSONValueEncoder` it is inserted unchanged.
    public func encode(to encoder: any Encoder) throws {
        if let tree = encoder as? TreeEncoder {
            try tree.insert(self)
            return
        }
        switch self {
        case .null:
            var single = encoder.singleValueContainer()
            try single.encodeNil()
        case let .bool(flag):
            var single = encoder.singleValueContainer()
            try single.encode(flag)
        case let .number(number):
            var single = encoder.singleValueContainer()
            if let integer = number.int64 {
                try single.encode(integer)
            } else if let integer = number.uint64 {
                try single.encode(integer)
            } else if let double = number.double {
                try single.encode(double)
            } else {
                throw EncodingError.invalidValue(
                    number.text,
                    EncodingError.Context(
                        codingPath: encoder.codingPath, debugDescription: "number out of Double's range"))
            }
        case let .string(text):
            var single = encoder.singleValueContainer()
            try single.encode(text)
        case let .array(elements):
            var array = encoder.unkeyedContainer()
            for element in elements { try array.encode(element) }
        case let .object(object):
            var container = encoder.container(keyedBy: AnyCodingKey.self)
            for member in object.members { try container.encode(member.value, forKey: AnyCodingKey(member.key)) }
        }
    }
}

// MARK: - Keys

/// A coding key for any member name or array index.
struct AnyCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ string: String) { stringValue = string; intValue = nil }
    init?(stringValue: String) { self.init(stringValue) }
    init(intValue: Int) { stringValue = "Index \(intValue)"; self.intValue = intValue }
    static let superKey = AnyCodingKey("super")
}

// MARK: - Encoding

final class EncodingContext {
    let maxDepth: Int
    let userInfo: [CodingUserInfoKey: Any]
    /// The first limit exceeded; containers created past the limit throw it on use.
    var failure: JSONCodingError?

    init(maxDepth: Int, userInfo: [CodingUserInfoKey: any Sendable]) {
        self.maxDepth = maxDepth
        self.userInfo = userInfo.mapValues { $0 }
    }
}

/// Where one value is being built. Containers hold boxes so nested containers and
/// super-encoders can be filled after they are handed out.
final class EncodingBox {
    enum Slot {
        case empty
        case value(JSONValue)
        case object(EncodedObject)
        case array(EncodedArray)
    }
    var slot: Slot = .empty

    func materialize(path: [any CodingKey]) throws(JSONCodingError) -> JSONValue {
        switch slot {
        case .empty:
            // A type that asked for no container and encoded nothing; Foundation writes `{}`.
            return .object(JSONObject())
        case let .value(value):
            return value
        case let .object(object):
            var members: [JSONMember] = []
            members.reserveCapacity(object.keys.count)
            for (key, box) in zip(object.keys, object.boxes) {
                members.append(JSONMember(key: key, value: try box.materialize(path: path + [AnyCodingKey(key)])))
            }
            return .object(JSONObject(members))
        case let .array(array):
            var elements: [JSONValue] = []
            elements.reserveCapacity(array.boxes.count)
            for (index, box) in array.boxes.enumerated() {
                elements.append(try box.materialize(path: path + [AnyCodingKey(intValue: index)]))
            }
            return .array(elements)
        }
    }
}

final class EncodedObject {
    var keys: [String] = []
    var boxes: [EncodingBox] = []
    var positions: [String: Int] = [:]

    /// The box for `key`: encoding a key twice replaces its value in place.
    func box(for key: String) -> EncodingBox {
        if let position = positions[key] {
            let box = EncodingBox()
            boxes[position] = box
            return box
        }
        let box = EncodingBox()
        positions[key] = keys.count
        keys.append(key)
        boxes.append(box)
        return box
    }
}

final class EncodedArray {
    var boxes: [EncodingBox] = []
    func append() -> EncodingBox {
        let box = EncodingBox()
        boxes.append(box)
        return box
    }
}

final class TreeEncoder: Encoder {
    let context: EncodingContext
    let box: EncodingBox
    let codingPath: [any CodingKey]
    /// Containers enclosing this encoder's value.
    let depth: Int
    var userInfo: [CodingUserInfoKey: Any] { context.userInfo }

    init(context: EncodingContext, box: EncodingBox, codingPath: [any CodingKey], depth: Int) {
        self.context = context
        self.box = box
        self.codingPath = codingPath
        self.depth = depth
    }

    /// Whether a container opened here fits the depth limit; records the failure if not.
    private func containerFits() -> Bool {
        if context.failure != nil { return false }
        guard depth + 1 <= context.maxDepth else {
            context.failure = JSONCodingError(
                .nestingTooDeep, codingPath, "more than \(context.maxDepth) nested containers")
            return false
        }
        return true
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let fits = containerFits()
        let object: EncodedObject
        if fits, case let .object(existing) = box.slot {
            object = existing
        } else {
            object = EncodedObject()
            if fits { box.slot = .object(object) }
        }
        return KeyedEncodingContainer(KeyedTreeEncoder<Key>(encoder: self, object: object, usable: fits))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let fits = containerFits()
        let array: EncodedArray
        if fits, case let .array(existing) = box.slot {
            array = existing
        } else {
            array = EncodedArray()
            if fits { box.slot = .array(array) }
        }
        return UnkeyedTreeEncoder(encoder: self, array: array, usable: fits)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleTreeEncoder(encoder: self) }

    /// Throws the recorded limit failure, if any.
    func checkUsable(_ usable: Bool) throws(JSONCodingError) {
        if !usable || context.failure != nil {
            throw context.failure
                ?? JSONCodingError(.nestingTooDeep, codingPath, "more than \(context.maxDepth) nested containers")
        }
    }

    func insert(_ value: JSONValue) throws(JSONCodingError) {
        box.slot = .value(value)
    }

    /// Encodes a value into this encoder's box: scalars directly, others through `encode(to:)`.
    func encodeValue(_ value: some Encodable) throws {
        if let scalar = try Self.scalar(value, codingPath) {
            box.slot = .value(scalar)
        } else if let json = value as? JSONValue {
            box.slot = .value(json)
        } else {
            try value.encode(to: self)
        }
    }

    /// The JSON of a standard-library scalar, or nil for other types.
    static func scalar(_ value: some Encodable, _ path: [any CodingKey]) throws(JSONCodingError) -> JSONValue? {
        switch value {
        case let value as String: return .string(value)
        case let value as Bool: return .bool(value)
        case let value as Int: return .number(JSONNumber(value))
        case let value as Int8: return .number(JSONNumber(Int(value)))
        case let value as Int16: return .number(JSONNumber(Int(value)))
        case let value as Int32: return .number(JSONNumber(Int(value)))
        case let value as Int64: return .number(JSONNumber(value))
        case let value as UInt: return .number(JSONNumber(UInt64(value)))
        case let value as UInt8: return .number(JSONNumber(UInt64(value)))
        case let value as UInt16: return .number(JSONNumber(UInt64(value)))
        case let value as UInt32: return .number(JSONNumber(UInt64(value)))
        case let value as UInt64: return .number(JSONNumber(value))
        case let value as Double:
            guard let number = JSONNumber(value) else {
                throw JSONCodingError(.nonFiniteNumber, path, "\(value) is not a JSON number")
            }
            return .number(number)
        case let value as Float:
            guard value.isFinite, let number = JSONNumber(text: value.description) else {
                throw JSONCodingError(.nonFiniteNumber, path, "\(value) is not a JSON number")
            }
            return .number(number)
        default:
            return nil
        }
    }

    /// An encoder for the child at `key`, writing into `box`.
    func child(_ box: EncodingBox, key: any CodingKey) -> TreeEncoder {
        TreeEncoder(context: context, box: box, codingPath: codingPath + [key], depth: depth + 1)
    }
}

struct KeyedTreeEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: TreeEncoder
    let object: EncodedObject
    let usable: Bool
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func put(_ value: JSONValue, _ key: Key) throws {
        try encoder.checkUsable(usable)
        object.box(for: key.stringValue).slot = .value(value)
    }

    mutating func encodeNil(forKey key: Key) throws { try put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(.string(value), key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encoder.checkUsable(usable)
        let child = encoder.child(object.box(for: key.stringValue), key: key)
        try child.encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let box = usable ? object.box(for: key.stringValue) : EncodingBox()
        return encoder.child(box, key: key).container(keyedBy: NestedKey.self)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let box = usable ? object.box(for: key.stringValue) : EncodingBox()
        return encoder.child(box, key: key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let box = usable ? object.box(for: AnyCodingKey.superKey.stringValue) : EncodingBox()
        return encoder.child(box, key: AnyCodingKey.superKey)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let box = usable ? object.box(for: key.stringValue) : EncodingBox()
        return encoder.child(box, key: key)
    }
}

struct UnkeyedTreeEncoder: UnkeyedEncodingContainer {
    let encoder: TreeEncoder
    let array: EncodedArray
    let usable: Bool
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int { array.boxes.count }

    private func nextBox() -> (EncodingBox, AnyCodingKey) {
        let key = AnyCodingKey(intValue: array.boxes.count)
        return (usable ? array.append() : EncodingBox(), key)
    }

    mutating func encodeNil() throws {
        try encoder.checkUsable(usable)
        array.append().slot = .value(.null)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encoder.checkUsable(usable)
        let (box, key) = nextBox()
        try encoder.child(box, key: key).encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let (box, key) = nextBox()
        return encoder.child(box, key: key).container(keyedBy: NestedKey.self)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (box, key) = nextBox()
        return encoder.child(box, key: key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let (box, key) = nextBox()
        return encoder.child(box, key: key)
    }
}

struct SingleTreeEncoder: SingleValueEncodingContainer {
    let encoder: TreeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.box.slot = .value(.null) }
    mutating func encode(_ value: Bool) throws { encoder.box.slot = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { encoder.box.slot = .value(.string(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        if let failure = encoder.context.failure { throw failure }
        try encoder.encodeValue(value)
    }
}

// MARK: - Decoding

final class TreeDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    /// Containers enclosing this decoder's value.
    let depth: Int
    let maxDepth: Int
    let info: [CodingUserInfoKey: any Sendable]
    var userInfo: [CodingUserInfoKey: Any] { info.mapValues { $0 } }

    init(
        value: JSONValue, codingPath: [any CodingKey], depth: Int, maxDepth: Int,
        info: [CodingUserInfoKey: any Sendable]
    ) {
        self.value = value
        self.codingPath = codingPath
        self.depth = depth
        self.maxDepth = maxDepth
        self.info = info
    }

    private func openContainer() throws(JSONCodingError) {
        guard depth + 1 <= maxDepth else {
            throw JSONCodingError(.nestingTooDeep, codingPath, "more than \(maxDepth) nested containers")
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try openContainer()
        guard case let .object(object) = value else { throw mismatch("an object", value, codingPath) }
        return KeyedDecodingContainer(KeyedTreeDecoder<Key>(decoder: self, object: object))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try openContainer()
        guard case let .array(elements) = value else { throw mismatch("an array", value, codingPath) }
        return UnkeyedTreeDecoder(decoder: self, elements: elements)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleTreeDecoder(decoder: self) }

    func child(_ value: JSONValue, key: any CodingKey) -> TreeDecoder {
        TreeDecoder(value: value, codingPath: codingPath + [key], depth: depth + 1, maxDepth: maxDepth, info: info)
    }

    /// Decodes this decoder's value as `T`: scalars directly, others through `init(from:)`.
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self, let same = value as? T { return same }
        if let scalar = try scalar(T.self) { return scalar }
        return try T(from: self)
    }

    /// `T` if it is a standard-library scalar, nil for other types.
    private func scalar<T>(_ type: T.Type) throws(JSONCodingError) -> T? {
        switch type {
        case is String.Type: return try string() as? T
        case is Bool.Type: return try bool() as? T
        case is Int.Type: return try integer(Int.self) as? T
        case is Int8.Type: return try integer(Int8.self) as? T
        case is Int16.Type: return try integer(Int16.self) as? T
        case is Int32.Type: return try integer(Int32.self) as? T
        case is Int64.Type: return try integer(Int64.self) as? T
        case is UInt.Type: return try integer(UInt.self) as? T
        case is UInt8.Type: return try integer(UInt8.self) as? T
        case is UInt16.Type: return try integer(UInt16.self) as? T
        case is UInt32.Type: return try integer(UInt32.self) as? T
        case is UInt64.Type: return try integer(UInt64.self) as? T
        case is Double.Type: return try double() as? T
        case is Float.Type: return try float() as? T
        default: return nil
        }
    }

    func string() throws(JSONCodingError) -> String {
        guard case let .string(text) = value else { throw mismatch("a string", value, codingPath) }
        return text
    }

    func bool() throws(JSONCodingError) -> Bool {
        guard case let .bool(flag) = value else { throw mismatch("a bool", value, codingPath) }
        return flag
    }

    func number() throws(JSONCodingError) -> JSONNumber {
        guard case let .number(number) = value else { throw mismatch("a number", value, codingPath) }
        return number
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type) throws(JSONCodingError) -> T {
        let number = try number()
        guard let result = JSONIntegerText.exact(number.text, as: T.self) else {
            throw JSONCodingError(.numberOutOfRange, codingPath, "\(number.text) is not a \(T.self)")
        }
        return result
    }

    func double() throws(JSONCodingError) -> Double {
        let number = try number()
        guard let result = Double(number.text), result.isFinite else {
            throw JSONCodingError(.numberOutOfRange, codingPath, "\(number.text) is beyond Double's range")
        }
        return result
    }

    func float() throws(JSONCodingError) -> Float {
        let number = try number()
        guard let result = Float(number.text), result.isFinite else {
            throw JSONCodingError(.numberOutOfRange, codingPath, "\(number.text) is beyond Float's range")
        }
        return result
    }
}

private func mismatch(_ expected: String, _ found: JSONValue, _ path: [any CodingKey]) -> JSONCodingError {
    if case .null = found { return JSONCodingError(.valueNotFound, path, "expected \(expected), found null") }
    return JSONCodingError(.typeMismatch, path, "expected \(expected), found \(found.kind)")
}

struct KeyedTreeDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: TreeDecoder
    /// Last member of each name wins, as in ``JSONObject``.
    let members: [String: JSONValue]
    let allKeys: [Key]
    var codingPath: [any CodingKey] { decoder.codingPath }

    init(decoder: TreeDecoder, object: JSONObject) {
        self.decoder = decoder
        var members: [String: JSONValue] = [:]
        var keys: [Key] = []
        for member in object.members {
            if members.updateValue(member.value, forKey: member.key) == nil, let key = Key(stringValue: member.key) {
                keys.append(key)
            }
        }
        self.members = members
        self.allKeys = keys
    }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func child(_ key: Key) throws(JSONCodingError) -> TreeDecoder {
        guard let value = members[key.stringValue] else {
            throw JSONCodingError(.keyNotFound, codingPath + [key], "no member \"\(key.stringValue)\"")
        }
        return decoder.child(value, key: key)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try child(key).value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try child(key).decodeValue(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: NestedKey.self)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        decoder.child(members[AnyCodingKey.superKey.stringValue] ?? .null, key: AnyCodingKey.superKey)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        decoder.child(members[key.stringValue] ?? .null, key: key)
    }
}

struct UnkeyedTreeDecoder: UnkeyedDecodingContainer {
    let decoder: TreeDecoder
    let elements: [JSONValue]
    var currentIndex = 0
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    init(decoder: TreeDecoder, elements: [JSONValue]) {
        self.decoder = decoder
        self.elements = elements
    }

    private func current() throws(JSONCodingError) -> TreeDecoder {
        let key = AnyCodingKey(intValue: currentIndex)
        guard currentIndex < elements.count else {
            throw JSONCodingError(.valueNotFound, codingPath + [key], "the array has only \(elements.count) elements")
        }
        return decoder.child(elements[currentIndex], key: key)
    }

    mutating func decodeNil() throws -> Bool {
        guard case .null = try current().value else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let value = try current().decodeValue(T.self)
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let container = try current().container(keyedBy: NestedKey.self)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try current().unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let child = try current()
        currentIndex += 1
        return child
    }
}

struct SingleTreeDecoder: SingleValueDecodingContainer {
    let decoder: TreeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}

// MARK: - Exact integers

enum JSONIntegerText {
    /// The integer `text` (RFC 8259 number grammar) denotes, if it is a whole number that fits
    /// `T`: `1`, `1.0`, `1e2`, `-0` and `1.50e1` qualify; `1.5` and `1e400` do not.
    static func exact<T: FixedWidthInteger>(_ text: String, as type: T.Type) -> T? {
        var utf8 = Array(text.utf8)
        var negative = false
        if utf8.first == UInt8(ascii: "-") {
            negative = true
            utf8.removeFirst()
        }
        var digits: [UInt8] = []
        var fractionCount = 0
        var exponent = 0
        var index = 0
        while index < utf8.count, utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") {
            digits.append(utf8[index]); index += 1
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: ".") {
            index += 1
            while index < utf8.count, utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") {
                digits.append(utf8[index]); fractionCount += 1; index += 1
            }
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: "e") || utf8[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < utf8.count, utf8[index] == UInt8(ascii: "+") || utf8[index] == UInt8(ascii: "-") {
                exponentNegative = utf8[index] == UInt8(ascii: "-")
                index += 1
            }
            var magnitude = 0
            while index < utf8.count, utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") {
                // Clamp: anything past a few hundred is out of every integer type's range anyway.
                magnitude = min(magnitude * 10 + Int(utf8[index] - UInt8(ascii: "0")), 1_000_000)
                index += 1
            }
            exponent = exponentNegative ? -magnitude : magnitude
        }
        guard index == utf8.count, !digits.isEmpty else { return nil }
        // Drop leading zeros; zero is zero whatever its sign or exponent.
        let firstNonZero = digits.firstIndex { $0 != UInt8(ascii: "0") }
        guard let firstNonZero else { return 0 }
        digits.removeFirst(firstNonZero)
        var scale = exponent - fractionCount
        if scale < 0 {
            let drop = -scale
            guard drop <= digits.count, digits.suffix(drop).allSatisfy({ $0 == UInt8(ascii: "0") }) else { return nil }
            digits.removeLast(drop)
            scale = 0
        }
        // 40 digits exceed every fixed-width integer up to 128 bits.
        guard digits.count + scale <= 40 else { return nil }
        digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: scale))
        if digits.isEmpty { return 0 }
        let magnitudeText = String(decoding: digits, as: UTF8.self)
        return T(negative ? "-" + magnitudeText : magnitudeText)
    }
}
