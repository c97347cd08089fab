/// OpenAPI paths and schemas of the gateway (merged with the shared components in APIDocument.swift).
enum GatewayDocument {
    static let paths = #"""
        {}
        """#
    static let schemas = #"""
        {}
        """#
}
