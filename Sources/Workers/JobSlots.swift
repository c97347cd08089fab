import NIOConcurrencyHelpers

/// How many jobs a worker delivers at once, whatever brought them: broker messages (a batch message carries many) or
/// claims straight from PostgreSQL. A delivery takes what is free, up to what it needs, and waits (first come, first
/// served) only when nothing is.
final class JobSlots: Sendable {
    struct State {
        var free: Int
        var waiters: [(wanted: Int, continuation: CheckedContinuation<Int, Never>)] = []
    }

    let total: Int
    let state: NIOLockedValueBox<State>

    init(_ total: Int) {
        self.total = max(1, total)
        state = NIOLockedValueBox(State(free: max(1, total)))
    }

    var free: Int { state.withLockedValue { $0.free } }

    /// Takes between 1 and `wanted` slots, waiting until at least one is free.
    func acquire(upTo wanted: Int) async -> Int {
        await withCheckedContinuation { continuation in
            let granted: Int? = state.withLockedValue { state in
                guard state.waiters.isEmpty, state.free > 0 else {
                    state.waiters.append((max(1, wanted), continuation))
                    return nil
                }
                let granted = min(max(1, wanted), state.free)
                state.free -= granted
                return granted
            }
            if let granted { continuation.resume(returning: granted) }
        }
    }

    /// Takes up to `wanted` slots without waiting (none while someone waits).
    func tryAcquire(upTo wanted: Int) -> Int {
        state.withLockedValue { state in
            guard state.waiters.isEmpty else { return 0 }
            let granted = min(max(0, wanted), state.free)
            state.free -= granted
            return granted
        }
    }

    func release(_ count: Int = 1) {
        guard count > 0 else { return }
        let woken: [(CheckedContinuation<Int, Never>, Int)] = state.withLockedValue { state in
            state.free += count
            var woken: [(CheckedContinuation<Int, Never>, Int)] = []
            while let first = state.waiters.first, state.free > 0 {
                let granted = min(first.wanted, state.free)
                state.free -= granted
                state.waiters.removeFirst()
                woken.append((first.continuation, granted))
            }
            return woken
        }
        for (continuation, granted) in woken { continuation.resume(returning: granted) }
    }
}
