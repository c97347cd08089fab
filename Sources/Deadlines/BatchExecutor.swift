import NIOConcurrencyHelpers

/// Runs concurrent single operations in groups: a call that finds a slot free runs at once, alone; calls that arrive
/// while `maxInFlight` groups are running wait and then go together, up to `maxBatch` in one group. At low load this
/// adds no latency; under load one round trip (one statement, one commit) serves many callers. Every caller gets its
/// own result, or the group's error, only after its group finished.
///
/// A group that outlives `deadline` fails with `DeadlineExceeded` and gives its slot back: a group caught on a
/// connection that died with the database server may never finish, and must not keep the slot (with every slot held,
/// nothing would ever be written again).
public final class BatchExecutor<Item: Sendable, Output: Sendable>: Sendable {
    struct Waiter: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Output, any Error>
    }

    struct State: Sendable {
        var waiting: [Waiter] = []
        /// When each running group (by slot run number) began.
        var running: [Int: ContinuousClock.Instant] = [:]
        var runs = 0
    }

    /// What the slots are doing (for /health).
    public struct Snapshot: Sendable {
        public var running: Int
        public var waiting: Int
        /// How long the oldest running group has been running.
        public var oldest: Duration?
    }

    public let maxBatch: Int
    public let maxInFlight: Int
    public let deadline: Duration?
    /// One output per item, in order.
    let execute: @Sendable ([Item]) async throws -> [Output]
    let state = NIOLockedValueBox(State())

    public init(maxBatch: Int, maxInFlight: Int, deadline: Duration? = nil, execute: @escaping @Sendable ([Item]) async throws -> [Output]) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
        self.deadline = deadline
        self.execute = execute
    }

    public var snapshot: Snapshot {
        let now = ContinuousClock.now
        return state.withLockedValue { state in
            Snapshot(running: state.running.count, waiting: state.waiting.count, oldest: state.running.values.min().map { now - $0 })
        }
    }

    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let start: (run: Int, batch: [Waiter])? = state.withLockedValue { state in
                state.waiting.append(Waiter(item: item, continuation: continuation))
                guard state.running.count < maxInFlight else { return nil }
                state.runs += 1
                state.running[state.runs] = .now
                return (state.runs, Self.take(&state, maxBatch))
            }
            if let start { Task { await self.drain(run: start.run, startingWith: start.batch) } }
        }
    }

    static func take(_ state: inout State, _ count: Int) -> [Waiter] {
        let batch = Array(state.waiting.prefix(count))
        state.waiting.removeFirst(batch.count)
        return batch
    }

    /// Runs groups until nobody waits, then gives the slot back.
    func drain(run: Int, startingWith first: [Waiter]) async {
        var batch = first
        while true {
            do {
                let items = batch.map(\.item)
                let outputs: [Output]
                if let deadline {
                    outputs = try await withDeadline(deadline) { [execute] in try await execute(items) }
                } else {
                    outputs = try await execute(items)
                }
                precondition(outputs.count == batch.count, "a batch must answer every item")
                for (waiter, output) in zip(batch, outputs) { waiter.continuation.resume(returning: output) }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
            let next: [Waiter]? = state.withLockedValue { state in
                if state.waiting.isEmpty {
                    state.running[run] = nil
                    return nil
                }
                state.running[run] = .now
                return Self.take(&state, maxBatch)
            }
            guard let next else { return }
            batch = next
        }
    }
}
