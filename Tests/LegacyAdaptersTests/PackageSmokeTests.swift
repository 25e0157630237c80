import Testing
@testable import LegacyAdapters
