import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// A local stand-in for FCM HTTP v1 (it lives on the internet, so a double is allowed): accepts
/// `POST /v1/projects/{project}/messages:send`, records each body and answers with FCM's success shape.
final class FakeFCM: Sendable {
    let received = NIOLockedValueBox<[Data]>([])
    let port = NIOLockedValueBox<Int>(0)

    var url: String { "http://127.0.0.1:\(port.withLockedValue { $0 })" }

    func messages() -> [[String: Any]] {
        received.withLockedValue { $0 }.compactMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
    }

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/projects/:project/**") { request, context -> Response in
            guard request.uri.path.hasSuffix("/messages:send") else { return Response(status: .notFound) }
            let body = try await request.body.collect(upTo: 1 << 20)
            self.received.withLockedValue { $0.append(Data(body.readableBytesView)) }
            let project = context.parameters.get("project") ?? "unknown"
            let name = "projects/\(project)/messages/\(UInt64.random(in: 1...UInt64.max))"
            return Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"name":"\#(name)"}"#))
            )
        }
        let port = self.port
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
    }
}
