import EndpointMux

/// The SwiftNIO adapter variant (filled in when LegacyAdaptersNIO lands).
enum KVNIO {
    struct Unavailable: Error, CustomStringConvertible { var description: String { "the nio adapter is not built yet" } }
    static func start(socket: String, store: KVStore, mux: EndpointMux?) throws -> () -> Void {
        throw Unavailable()
    }
}
