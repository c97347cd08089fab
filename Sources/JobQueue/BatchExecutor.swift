import NIOConcurrencyHelpers

/// Runs concurrent single operations in groups: a call that finds a slot free runs at once, alone; calls that arrive
/// while `maxInFlight` groups are running wait and then go together, up to `maxBatch` in one group. At low load this
/// adds no latency; under load one round trip (one statement, one commit) serves many callers. Every caller gets its
/// own result, or the group's error, only after its group finished.
public final class BatchExecutor<Item: Sendable, Output: Sendable>: Sendable {
    struct Waiter: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Output, any Error>
    }

    struct State: Sendable {
        var waiting: [Waiter] = []
        var inFlight = 0
    }

    public let maxBatch: Int
    public let maxInFlight: Int
    /// One output per item, in order.
    let execute: @Sendable ([Item]) async throws -> [Output]
    let state = NIOLockedValueBox(State())

    public init(maxBatch: Int, maxInFlight: Int, execute: @escaping @Sendable ([Item]) async throws -> [Output]) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
        self.execute = execute
    }

    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let batch: [Waiter]? = state.withLockedValue { state in
                state.waiting.append(Waiter(item: item, continuation: continuation))
                guard state.inFlight < maxInFlight else { return nil }
                state.inFlight += 1
                return Self.take(&state, maxBatch)
            }
            if let batch { Task { await self.drain(startingWith: batch) } }
        }
    }

    static func take(_ state: inout State, _ count: Int) -> [Waiter] {
        let batch = Array(state.waiting.prefix(count))
        state.waiting.removeFirst(batch.count)
        return batch
    }

    /// Runs groups until nobody waits, then gives the slot back.
    func drain(startingWith first: [Waiter]) async {
        var batch = first
        while true {
            do {
                let outputs = try await execute(batch.map(\.item))
                precondition(outputs.count == batch.count, "a batch must answer every item")
                for (waiter, output) in zip(batch, outputs) { waiter.continuation.resume(returning: output) }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
            let next: [Waiter]? = state.withLockedValue { state in
                if state.waiting.isEmpty {
                    state.inFlight -= 1
                    return nil
                }
                return Self.take(&state, maxBatch)
            }
            guard let next else { return }
            batch = next
        }
    }
}
