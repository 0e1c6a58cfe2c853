import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the request's connection, so that a route can stop the
/// model's work for a client that has gone away (`cancelWhenClientLeaves`).
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Cancels `control`'s job when the client closes the connection: a waiting job leaves the queue at
    /// once, a running one stops at its next check. Without this a client that gives up on a whole
    /// (non-streaming) completion would have it run to its end, and a streaming one would be noticed
    /// only when a token written to it fails, after its prompt had been put through the model.
    func cancelWhenClientLeaves(_ control: ModelWorker.JobControl) {
        let channel = self.channel
        let logger = self.logger
        channel.eventLoop.execute {
            if let watch = try? channel.pipeline.syncOperations.handler(type: ClientHangUpWatch.self) {
                watch.watch(control)
            } else if !channel.isActive {
                control.cancel() // closed already: the handlers have left the pipeline
            } else {
                logger.debug("no hang-up watch on this connection: a client that leaves is noticed only by a failed write")
            }
        }
    }
}

/// One per connection, in the channel pipeline after the HTTP decoder: cancels the jobs of the requests
/// being answered on it once the client has closed it. A client closing only its sending side counts as
/// gone too, as Go's net/http counts it: HTTP clients do not half-close while waiting for an answer
/// (requests pipelined before a half-close are not answered either). Hummingbird allows half-closure,
/// so the channel would otherwise stay open until a write to it fails.
/// (Hummingbird's own `consumeWithInboundCloseHandler` learns this by reading the request stream itself,
/// which ends the connection after the response: no keep-alive.)
/// Runs on the channel's event loop only, so it needs no lock.
final class ClientHangUpWatch: ChannelInboundHandler, RemovableChannelHandler {
    /// Reads pass through untouched.
    typealias InboundIn = Any

    /// Weak: a finished request's control need not outlive it on a keep-alive connection.
    private struct Watched { weak var control: ModelWorker.JobControl? }
    private var watched: [Watched] = []
    private var clientLeft = false

    func watch(_ control: ModelWorker.JobControl) {
        if clientLeft { return control.cancel() }
        watched.removeAll { $0.control == nil }
        watched.append(Watched(control: control))
    }

    private func clientHasLeft() {
        clientLeft = true
        for w in watched { w.control?.cancel() }
        watched = []
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if (event as? ChannelEvent) == .inputClosed { clientHasLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientHasLeft()
        context.fireChannelInactive()
    }
}
