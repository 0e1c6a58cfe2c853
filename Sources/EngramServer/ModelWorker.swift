import Engram
import Foundation

/// The one place where the model is touched. Jobs start one at a time, in arrival order, on a dedicated
/// thread. Every job but a generation runs to its end before the next starts. Generations are decoded
/// together: a generation job joins the sequences being decoded when its turn comes, and each step puts
/// a bounded share of the joining prompts through the model, a piece at a time
/// (`DecodingSequence.promptPiece` tokens), then advances every prefilled sequence by one token in
/// batched passes (`Generator.advance`). So a long prompt delays the streams already running by one
/// piece per step, not by its whole pass.
/// A job that only reads the model (a probe) runs between two decoding steps. Any other job (an edit, a
/// toggle, a trace) waits until every generation started before it has ended, and generations queued
/// after it wait for it. So every request still sees the model entirely before or entirely after a
/// change. (Running jobs on Swift's cooperative pool instead would block one of its few threads for
/// seconds at a time.)
///
/// The queue is bounded: a job arriving when `maxQueued` jobs are already waiting is refused at once.
/// Each job carries a deadline; one still waiting at its deadline is answered with a timeout at once, one
/// cancelled while waiting (its client gone) with `CancellationError`, and a running job sees
/// `isCancelled` become true (the generation loop and causal tracing poll it).
final class ModelWorker: @unchecked Sendable {
    /// What a running job can ask about itself.
    final class JobControl: @unchecked Sendable {
        let deadline: ContinuousClock.Instant?
        private let lock = NSLock()
        private var cancelled = false

        init(deadline: ContinuousClock.Instant?) { self.deadline = deadline }

        /// What the worker does when a job still waiting is cancelled: takes it out of the queue.
        private var whenCancelled: (() -> Void)?

        /// Stops a running job at its next check, and answers a waiting one at once (its client went away).
        func cancel() {
            lock.lock()
            cancelled = true
            let hook = whenCancelled
            whenCancelled = nil
            lock.unlock()
            hook?()
        }

        /// Sets what `cancel` does for a job that waits; runs it now if the job was cancelled already.
        fileprivate func onCancel(_ hook: @escaping () -> Void) {
            lock.lock()
            let already = cancelled
            whenCancelled = already ? nil : hook
            lock.unlock()
            if already { hook() }
        }

        var isCancelled: Bool {
            lock.lock()
            defer { lock.unlock() }
            if cancelled { return true }
            if let deadline, ContinuousClock.now >= deadline { return true }
            return false
        }

        var isPastDeadline: Bool { deadline.map { ContinuousClock.now >= $0 } ?? false }

        /// A read job runs beside sequences being decoded (set by the worker before it runs). A read that
        /// finds itself too heavy to run between two steps throws `NeedsTheModelAlone` and runs again
        /// when the decoding has ended.
        fileprivate(set) var runsBesideDecoding = false
    }

    /// Thrown by a read job that would hold the decoding up for long: it waits for the model alone.
    struct NeedsTheModelAlone: Error {}

    private struct Job {
        let control: JobControl
        enum Work {
            /// A job run to its end, with the model to itself.
            case run(() -> Void)
            /// A job that only reads the model: it may run between two decoding steps (its argument says
            /// whether it does). Returns false when it would rather wait for the model alone.
            case read((Bool) -> Bool)
            /// A generation: returns its sequences, to be prefilled and decoded (nil when it has ended already).
            case generation(() -> ActiveGeneration?)
        }
        let work: Work
        let reject: (Error) -> Void
        /// What the job is answered with when its deadline passes while it waits.
        let timeout: Error
    }

    /// A generation job's sequences while they are decoded, and what to call when all have ended.
    final class ActiveGeneration {
        let sequences: [DecodingSequence]
        let control: JobControl
        private let complete: (Error?) -> Void

        init(sequences: [DecodingSequence], control: JobControl, complete: @escaping (Error?) -> Void) {
            self.sequences = sequences
            self.control = control
            self.complete = complete
        }

        var isFinished: Bool { sequences.allSatisfy(\.isFinished) }

        /// Resumes the job: with the error that ended it, if a sequence failed. A failure cancels the
        /// job's other sequences, so their cancellations are not what the client is told.
        func finish() {
            let failures = sequences.compactMap { sequence -> Error? in
                if case let .failure(error) = sequence.outcome { return error }
                return nil
            }
            complete(failures.first { !($0 is CancellationError) } ?? failures.first)
        }
    }

    let maxQueued: Int
    /// Sequences advanced by one batched pass at most. A pass multiplies one row per sequence; up to
    /// `BLAS.smallProductRows` rows, each row's sums are formed as for that row alone. A generation joins
    /// while fewer are active, with all its prompts, so a step may take more than one pass.
    let maxSequences: Int
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var stopping = false
    private var stopped = false
    private var thread: Thread?

    private var runningJob = false
    /// Generations being decoded (worker thread only) and their sequence count (under the lock, for /health).
    private var active: [ActiveGeneration] = []
    private var activeSequences = 0
    /// The most sequences one step has advanced together (for tests).
    var largestStep: Int {
        condition.lock()
        defer { condition.unlock() }
        return largestStepSoFar
    }
    private var largestStepSoFar = 0 // under the lock
    /// The most prompt tokens one step has put through the model, and how many steps put prompt tokens
    /// through while other sequences were being decoded (for tests).
    var promptSharing: (largest: Int, sharedSteps: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (largestPromptShareSoFar, stepsSharedWithPromptsSoFar)
    }
    private var largestPromptShareSoFar = 0, stepsSharedWithPromptsSoFar = 0 // under the lock
    /// Prompt tokens put through the model so far (for tests).
    var promptTokensRun: Int {
        condition.lock()
        defer { condition.unlock() }
        return promptTokensRunSoFar
    }
    private var promptTokensRunSoFar = 0 // under the lock

    /// Read jobs too heavy to run between two decoding steps, in arrival order: they run first once the
    /// decoding has ended, and no generation or exclusive job starts before them (under the lock).
    private var held: [Job] = []

    /// Jobs waiting (not counting those running) and whether one is running, for /health.
    var load: (waiting: Int, running: Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count - head + held.count, runningJob || activeSequences > 0)
    }

    /// Runs on the worker whenever the last generation being decoded has ended (no pass is running then):
    /// what the server does after every other job, there at the job's end (drop float copies, return
    /// freed memory to the system).
    private let whenIdle: () -> Void

    init(maxQueued: Int, maxSequences: Int = 16, name: String = "engram.model-worker", whenIdle: @escaping () -> Void = {}) {
        self.maxQueued = max(1, maxQueued)
        self.maxSequences = max(1, min(maxSequences, BLAS.smallProductRows))
        self.whenIdle = whenIdle
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
    /// `readsOnly`: the job changes neither the weights nor the edits, even for a moment, so it need not
    /// wait for the generations being decoded. The after-job hook runs before the result is returned,
    /// unless sequences are still being decoded (it runs when the last of them ends).
    func run<T>(deadline: ContinuousClock.Instant?, control: JobControl? = nil, timeoutSeconds: Double, readsOnly: Bool = false,
                _ body: @escaping (JobControl) throws -> T) async throws -> T {
        let control = control ?? JobControl(deadline: deadline)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let fail = Self.failure(control, timeoutSeconds: timeoutSeconds)
            let work = { [self] (besideDecoding: Bool) -> Bool in
                if control.isCancelled {
                    continuation.resume(throwing: fail(CancellationError()))
                    return true
                }
                control.runsBesideDecoding = besideDecoding
                let result = Result { try body(control) }
                if besideDecoding, case .failure(let error) = result, error is NeedsTheModelAlone { return false }
                if active.isEmpty { whenIdle() }
                continuation.resume(with: result.mapError(fail))
                return true
            }
            enqueue(Job(control: control, work: readsOnly ? .read(work) : .run { _ = work(false) },
                        reject: { continuation.resume(throwing: $0) }, timeout: APIError.timeout(seconds: timeoutSeconds)))
        }
    }

    /// Queues a generation: `start` runs on the worker when its turn comes and returns the sequences, which
    /// the worker prefills and decodes, and how to make the job's result once they have all ended
    /// (`result` is called then).
    /// Errors as for `run`; a sequence that fails fails the job.
    func generate<T>(deadline: ContinuousClock.Instant?, control: JobControl? = nil, timeoutSeconds: Double,
                     _ start: @escaping (JobControl) throws -> (sequences: [DecodingSequence], result: () throws -> T)) async throws -> T {
        let control = control ?? JobControl(deadline: deadline)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let fail = Self.failure(control, timeoutSeconds: timeoutSeconds)
            enqueue(Job(control: control, work: .generation {
                if control.isCancelled {
                    continuation.resume(throwing: fail(CancellationError()))
                    return nil
                }
                do {
                    let (sequences, result) = try start(control)
                    let generation = ActiveGeneration(sequences: sequences, control: control) { error in
                        if let error { return continuation.resume(throwing: fail(error)) }
                        do { continuation.resume(returning: try result()) } catch { continuation.resume(throwing: fail(error)) }
                    }
                    if generation.isFinished {
                        generation.finish()
                        return nil
                    }
                    return generation
                } catch {
                    continuation.resume(throwing: fail(error))
                    return nil
                }
            }, reject: { continuation.resume(throwing: $0) }, timeout: APIError.timeout(seconds: timeoutSeconds)))
        }
    }

    /// A job's error as the client sees it: cancellation at the deadline is a timeout.
    private static func failure(_ control: JobControl, timeoutSeconds: Double) -> (Error) -> Error {
        { error in error is CancellationError && control.isPastDeadline ? APIError.timeout(seconds: timeoutSeconds) : error }
    }

    private func enqueue(_ job: Job) {
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
        // Weak: a job that has left the queue needs neither, and its control (held by the job while it
        // waits) should go with its request, not live on until the deadline.
        let timeout = job.timeout
        if let deadline = job.control.deadline {
            let wait = max(0, (deadline - ContinuousClock.now).seconds)
            DispatchQueue.global().asyncAfter(deadline: .now() + wait) { [weak self, weak control = job.control] in
                if let control { self?.withdraw(control, with: timeout) }
            }
        }
        job.control.onCancel { [weak self, weak control = job.control] in
            // A client that leaves after the deadline passed, before the timer ran, timed out first.
            if let control { self?.withdraw(control, with: control.isPastDeadline ? timeout : CancellationError()) }
        }
    }

    /// Answers a job still waiting at its deadline (with a timeout) or cancelled (its client gone) at once,
    /// rather than when its turn comes (behind an edit that takes seconds), and frees its place in the
    /// queue. A job that has started sees `isCancelled` instead.
    private func withdraw(_ control: JobControl, with error: Error) {
        condition.lock()
        var withdrawn: Job?
        if let i = queue[head...].firstIndex(where: { $0.control === control }) {
            withdrawn = queue[i]
            take(at: i)
        } else if let i = held.firstIndex(where: { $0.control === control }) {
            withdrawn = held.remove(at: i)
        }
        condition.unlock()
        withdrawn?.reject(error)
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
            while head == queue.count && active.isEmpty && held.isEmpty && !stopping { condition.wait() }
            if head == queue.count && active.isEmpty && held.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            // The next job starts if it is a generation and there is room among the sequences being
            // decoded, a read, or anything once nothing is being decoded; otherwise the decoding goes on
            // a step. A read may pass generations waiting for room (neither changes the model), never
            // another job. Held reads go first when the decoding has ended; until then nothing joins it.
            var next: Job?
            if active.isEmpty && !held.isEmpty {
                next = held.removeFirst()
            } else {
                var i = head
                while i < queue.count {
                    let job = queue[i]
                    let fits: Bool
                    switch job.work {
                    case .generation: fits = held.isEmpty && activeSequences < maxSequences
                    case .read: fits = true
                    case .run: fits = active.isEmpty
                    }
                    if fits {
                        next = job
                        take(at: i)
                        break
                    }
                    guard case .generation = job.work else { break }
                    i += 1
                }
            }
            runningJob = next != nil
            condition.unlock()
            switch next?.work {
            case let .run(run)?:
                run()
            case let .read(read)?:
                if let job = next, !read(!active.isEmpty) {
                    condition.lock()
                    held.append(job)
                    condition.unlock()
                }
                // A step after every read while decoding, so that a stream of reads cannot hold it up.
                if !active.isEmpty { stepAndReportIdle() }
            case let .generation(start)?:
                if let generation = start() { active.append(generation) }
                if active.isEmpty { whenIdle() } // it ended at once
            case nil:
                stepAndReportIdle()
            }
            condition.lock()
            runningJob = false
            activeSequences = active.reduce(0) { $0 + $1.sequences.count }
            condition.unlock()
        }
    }

    /// Removes the queued job at `i` (under the lock).
    private func take(at i: Int) {
        if i == head {
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
        } else {
            queue.remove(at: i)
        }
    }

    private func stepAndReportIdle() {
        step()
        if active.isEmpty { whenIdle() } // the last generation has ended
    }

    /// Puts up to `DecodingSequence.promptPiece` prompt tokens through the model, oldest prompts first,
    /// then advances every prefilled sequence by one token, then resumes the generation jobs that ended.
    private func step() {
        let streams = active.reduce(0) { $0 + $1.sequences.filter { $0.isPrefilled && !$0.isFinished }.count }
        // Prompts of jobs cancelled while they waited (a client gone, a deadline passed) end now, unrun.
        for generation in active where generation.control.isCancelled {
            for sequence in generation.sequences where !sequence.isPrefilled { try? sequence.prefillPiece() }
        }
        var promptTokens = 0
        prefilling: for generation in active {
            for sequence in generation.sequences where !sequence.isPrefilled {
                let before = sequence.promptTokensDone
                let piece = min(DecodingSequence.promptPiece, sequence.prompt.count - before)
                if promptTokens > 0 && promptTokens + piece > DecodingSequence.promptPiece { break prefilling }
                do {
                    try sequence.prefillPiece()
                } catch {
                    generation.control.cancel() // the job has failed: its other prompts need not run
                }
                promptTokens += sequence.promptTokensDone - before
            }
        }
        let sequences = active.flatMap { $0.sequences.filter { $0.isPrefilled && !$0.isFinished } }
        condition.lock()
        largestStepSoFar = max(largestStepSoFar, sequences.count)
        largestPromptShareSoFar = max(largestPromptShareSoFar, promptTokens)
        promptTokensRunSoFar += promptTokens
        if promptTokens > 0 && streams > 0 { stepsSharedWithPromptsSoFar += 1 }
        condition.unlock()
        // A failed pass ends every sequence in it, with its error; their jobs report it.
        for start in stride(from: 0, to: sequences.count, by: maxSequences) {
            let pass = Array(sequences[start..<min(start + maxSequences, sequences.count)])
            try? pass[0].generator.advance(pass)
        }
        for generation in active where generation.isFinished { generation.finish() }
        active.removeAll { $0.isFinished }
    }
}
