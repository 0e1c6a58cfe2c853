import Engram
@testable import EngramServer
import Foundation
import XCTest

/// The server's model worker, driven directly with a tiny model, so that the order of its jobs can be
/// pinned down without timing: the worker is held by a first job until every other job is queued.
final class ModelWorkerTests: XCTestCase {
    /// With room for one sequence: a read passes a completion waiting for room (neither changes the
    /// model) but never an exclusive job; a read too heavy to run beside decoding waits for the decoding to
    /// end and runs before anything joins it, while lighter reads still pass it.
    func testReadsPassWaitingCompletionsButNotExclusiveJobs() async throws {
        let model = try TinyModels.llama(vocab: 40)
        let generator = Generator(model: model, tokenizer: TestTokenizer(pieces: []))
        let worker = ModelWorker(maxQueued: 16, maxSequences: 1)
        let events = EventLog()

        func generation(_ name: String, tokens: Int) -> Task<Void, Error> {
            Task {
                try await worker.generate(deadline: nil, timeoutSeconds: 60) { _ in
                    var options = GenerationOptions(maxTokens: tokens)
                    options.stopAtEndOfGeneration = false
                    events.add("\(name) joins")
                    return ([try DecodingSequence(generator: generator, prompt: [2, 3, 4], options: options)], { events.add("\(name) ends") })
                }
            }
        }
        func read(_ name: String, heavy: Bool = false) -> Task<Void, Error> {
            Task {
                try await worker.run(deadline: nil, timeoutSeconds: 60, readsOnly: true) { control in
                    events.add("\(name)\(control.runsBesideDecoding ? " beside decoding" : "")")
                    if heavy && control.runsBesideDecoding { throw ModelWorker.NeedsTheModelAlone() }
                }
            }
        }
        func queued(_ count: Int) async throws {
            while worker.load.waiting < count { try await Task.sleep(for: .milliseconds(2)) }
        }

        let gate = DispatchSemaphore(value: 0)
        let blocker = Task { try await worker.run(deadline: nil, timeoutSeconds: 60) { _ in gate.wait() } }
        while !worker.load.running { try await Task.sleep(for: .milliseconds(2)) }
        var tasks: [Task<Void, Error>] = []
        tasks.append(generation("A", tokens: 400)); try await queued(1)
        tasks.append(generation("B", tokens: 3)); try await queued(2)
        tasks.append(read("read 1")); try await queued(3)
        tasks.append(read("heavy read", heavy: true)); try await queued(4)
        tasks.append(read("read 3")); try await queued(5)
        tasks.append(Task { try await worker.run(deadline: nil, timeoutSeconds: 60) { _ in events.add("edit") } }); try await queued(6)
        tasks.append(read("read 2")); try await queued(7)
        gate.signal()
        try await blocker.value
        for task in tasks { try await task.value }

        XCTAssertEqual(events.all, ["A joins", "read 1 beside decoding", "heavy read beside decoding", "read 3 beside decoding",
                                    "A ends", "heavy read", "B joins", "B ends", "edit", "read 2"])
        worker.stop()
        worker.waitUntilStopped()
    }
}

extension ModelWorkerTests {
    /// A job waiting behind a long one is answered with a timeout at its deadline, not when its turn
    /// comes; the worker then never runs it.
    func testAWaitingJobTimesOutAtItsDeadline() async throws {
        let worker = ModelWorker(maxQueued: 4)
        let gate = DispatchSemaphore(value: 0)
        let released = EventLog()
        let blocker = Task { try await worker.run(deadline: nil, timeoutSeconds: 60) { _ in gate.wait() } }
        while !worker.load.running { try await Task.sleep(for: .milliseconds(2)) }
        // The safety net: the blocker ends after 10 s whatever happens, so a defect fails rather than hangs.
        let net = Task {
            try await Task.sleep(for: .seconds(10))
            released.add("released")
            gate.signal()
        }
        let ran = EventLog()
        let start = ContinuousClock.now
        for readsOnly in [true, false] {
            do {
                try await worker.run(deadline: .now + .milliseconds(200), timeoutSeconds: 0.2, readsOnly: readsOnly) { _ in ran.add("ran") }
                XCTFail("the job ran")
            } catch let error as APIError {
                XCTAssertEqual(error.status, .requestTimeout, "\(error)")
            }
        }
        XCTAssertEqual(released.all, [], "the timeouts came only when the long job ended")
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
        XCTAssertEqual(worker.load.waiting, 0)
        net.cancel()
        gate.signal()
        try await blocker.value
        XCTAssertEqual(ran.all, [])
        worker.stop()
        worker.waitUntilStopped()
    }
}

private final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [String] = []

    func add(_ event: String) {
        lock.lock()
        events.append(event)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }
}
