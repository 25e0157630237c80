/// LegacyAdapters: everything in EndpointMux that touches a file descriptor.
///
/// The adapters borrow a daemon's sockets, feed the bytes (and received file
/// descriptors) to the sans-IO `EndpointMux`, and write what it answers.
public enum LegacyAdaptersModule {}
