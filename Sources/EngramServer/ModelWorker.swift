import Foundation

/// The one place where the model is touched. Jobs run one at a time, in arrival order, on a dedicated
/// thread: a forward pass, a generation, an edit or a toggle never overlaps another, so every request
/// sees the model entirely before or entirely after a change. (Running jobs on Swift's cooperative
/// pool instead would block one of its few threads for seconds at a time.)
///
/// The queue is bounded: a job arriving when `maxQueued` jobs are already waiting is refused at once.
/// Each job carries a deadline; one still waiting at its deadline is dropped, and a running job sees
/// `isCancelled` become true (the generation loop and causal tracing poll it).
final class ModelWorker: @unchecked Sendable {
    /// What a running job can ask about itself.
    final class JobControl: @unchecked Sendable {
        let deadline: ContinuousClock.Instant?
        private let lock = NSLock()
        private var cancelled = false

        init(deadline: ContinuousClock.Instant?) { self.deadline = deadline }

        /// Stops a running job at its next check (a streaming client went away).
        func cancel() {
            lock.lock()
            cancelled = true
            lock.unlock()
        }

        var isCancelled: Bool {
            lock.lock()
            defer { lock.unlock() }
            if cancelled { return true }
            if let deadline, ContinuousClock.now >= deadline { return true }
            return false
        }

        var isPastDeadline: Bool { deadline.map { ContinuousClock.now >= $0 } ?? false }
    }

    private struct Job {
        let control: JobControl
        let run: () -> Void
        let reject: (Error) -> Void
    }

    let maxQueued: Int
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var stopping = false
    private var stopped = false
    private var thread: Thread?

    private var runningJob = false

    /// Jobs waiting (not counting the running one) and whether one is running, for /health.
    var load: (waiting: Int, running: Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count - head, runningJob)
    }

    init(maxQueued: Int, name: String = "engram.model-worker") {
        self.maxQueued = max(1, maxQueued)
        // The thread holds the worker until `stop` lets its loop end.
        let thread = Thread { self.loop() }
        thread.name = name
        // Deep recursion is not expected, but forward passes keep large frames: give the thread room.
        thread.stackSize = 16 << 20
        self.thread = thread
        thread.start()
    }

    /// Runs `body` on the worker thread and returns its result. Throws `APIError.busy` when the queue
    /// is full, `APIError.timeout` when the deadline passes while waiting, and `shuttingDown` after `stop`.
    func run<T>(deadline: ContinuousClock.Instant?, control: JobControl? = nil, timeoutSeconds: Double,
                _ body: @escaping (JobControl) throws -> T) async throws -> T {
        let control = control ?? JobControl(deadline: deadline)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job = Job(control: control, run: {
                if control.isCancelled {
                    continuation.resume(throwing: control.isPastDeadline ? APIError.timeout(seconds: timeoutSeconds) : CancellationError())
                    return
                }
                do {
                    continuation.resume(returning: try body(control))
                } catch is CancellationError where control.isPastDeadline {
                    continuation.resume(throwing: APIError.timeout(seconds: timeoutSeconds))
                } catch {
                    continuation.resume(throwing: error)
                }
            }, reject: { continuation.resume(throwing: $0) })
            condition.lock()
            if stopping {
                condition.unlock()
                job.reject(APIError.shuttingDown)
                return
            }
            let depth = queue.count - head
            if depth >= maxQueued {
                condition.unlock()
                job.reject(APIError.busy(depth: depth))
                return
            }
            queue.append(job)
            condition.signal()
            condition.unlock()
        }
    }

    /// Finishes the jobs already queued, then ends the thread. New jobs are refused from now on.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits (blocking) until the thread has ended.
    func waitUntilStopped(timeout: Double = 30) {
        let end = Date().addingTimeInterval(timeout)
        condition.lock()
        while !stopped && Date() < end { _ = condition.wait(until: min(end, Date().addingTimeInterval(0.1))) }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while head == queue.count && !stopping { condition.wait() }
            if head == queue.count && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = queue[head]
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            runningJob = true
            condition.unlock()
            job.run()
            condition.lock()
            runningJob = false
            condition.unlock()
        }
    }
}
