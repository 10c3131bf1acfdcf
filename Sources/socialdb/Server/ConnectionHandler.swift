import NIOCore
import NIOPosix

/// The limits every connection of `socialdb serve` lives under. Each is a bound on memory or
/// time a client can make the server spend: a client that breaks one gets an error or is closed,
/// never more of the server.
struct ConnectionLimits: Sendable {
    /// A line longer than this is answered `too_long` and its bytes are dropped as they arrive
    /// (never held), so the input buffer of a connection stays below this plus one socket read.
    var lineBytesMax = 64 * 1024
    /// Command lines received but not yet answered. When this many wait, the server stops
    /// reading the socket (TCP flow control then slows the client) until they are answered.
    var pendingLinesMax = 256
    /// Lines one job on the worker pool runs before it answers (a batch shares one hop to the
    /// worker and one write to the socket; a job also ends once its answer passes
    /// `batchOutputBytesMax`).
    var batchLinesMax = 64
    var batchOutputBytesMax = 1 << 20
    /// A connection that sends nothing for this long while nothing of it runs is closed (0: never).
    var idleSeconds: Int64 = 300
}

/// Sent down every connection's pipeline when the server shuts down: the connection stops
/// reading, answers the batch it is running, and closes.
struct DrainEvent: Sendable {}

/// One connection of `socialdb serve`: splits the byte stream into command lines, runs them in
/// order on the worker pool (the engine blocks on fdatasync, which must not stall an event
/// loop), and writes the answers in the same order.
///
/// At most one job of a connection runs at a time; its lines are taken from the front of
/// `pending`, and the answers are written before the next job starts, so responses come in the
/// order of the commands however many are pipelined. Backpressure: the handler swallows the
/// channel's `read` while `pending` is full, while unparsed input waits, or while the socket's
/// send buffer is above its high-water mark (a client that does not read its answers), so a
/// slow or hostile client holds at most `pendingLinesMax` lines, one socket read of bytes and
/// one batch of answers.
///
/// Thread safety: a channel handler; everything but the job's body runs on the channel's event loop.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: Session
    private let pool: NIOThreadPool
    private let limits: ConnectionLimits

    /// Received bytes not yet cut into lines.
    private var input: ByteBuffer?
    /// The rest of an over-long line is being dropped up to its newline.
    private var discardingLine = false
    private var pending = CircularBuffer<Session.Input>(initialCapacity: 16)
    private var jobRunning = false
    /// A `read` was held back by backpressure and is owed to the channel.
    private var readHeld = false
    /// QUIT was answered, the server drains, or the channel is gone: run no more jobs.
    private var closing = false
    /// The client shut down its side (`shutdown(SHUT_WR)`, `nc -N`): answer what it sent, then close.
    private var inputClosed = false

    /// Reads, and with `writesOnEventLoop` the small writes, run on the event loop instead of
    /// the worker pool (see `Server.Configuration`).
    private let readsOnEventLoop: Bool
    private let writesOnEventLoop: Bool
    /// The answers of the reads run on the event loop, reused from batch to batch.
    private var inlineOutput: [UInt8] = []
    static let inlineOutputKeptBytesMax = 64 * 1024
    /// Answers were written and not yet flushed (one flush per round of work, not per answer).
    private var unflushed = false

    init(session: Session, pool: NIOThreadPool, limits: ConnectionLimits, readsOnEventLoop: Bool = false, writesOnEventLoop: Bool = false) {
        self.session = session
        self.pool = pool
        self.limits = limits
        self.readsOnEventLoop = readsOnEventLoop
        self.writesOnEventLoop = readsOnEventLoop && writesOnEventLoop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if closing { return }
        if input == nil {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        cutLines()
        startJob(context: context)
    }

    /// Moves complete lines from `input` to `pending` while there is room.
    private func cutLines() {
        guard var buffer = input else { return }
        input = nil
        defer {
            if buffer.readableBytes == 0 {
                buffer.clear()
            } else if buffer.readerIndex > 64 * 1024 {
                buffer.discardReadBytes()
            }
            input = buffer
        }
        while pending.count < limits.pendingLinesMax {
            guard let newline = buffer.readableBytesView.firstIndex(of: 10) else {
                if discardingLine {
                    buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                } else if buffer.readableBytes > limits.lineBytesMax {
                    discardingLine = true
                    buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                }
                return
            }
            let length = newline - buffer.readerIndex
            if discardingLine || length > limits.lineBytesMax {
                discardingLine = false
                buffer.moveReaderIndex(forwardBy: length + 1)
                pending.append(.tooLong(limitBytes: limits.lineBytesMax))
                continue
            }
            var lineLength = length
            if lineLength > 0 && buffer.getInteger(at: buffer.readerIndex + lineLength - 1, as: UInt8.self) == 13 { lineLength -= 1 }
            let line = buffer.readableBytesView.prefix(lineLength).withContiguousStorageIfAvailable {
                String(validating: $0, as: UTF8.self)
            } ?? nil
            buffer.moveReaderIndex(forwardBy: length + 1)
            pending.append(line.map { .line($0) } ?? .notText)
        }
    }

    /// Runs what can run now, in order: the reads at the front of `pending` right here on the
    /// event loop (when `readsOnEventLoop`), else one job on the worker pool for the lines at
    /// the front; nothing while a job runs or the client is not reading its answers. Answers
    /// made here are written as they come and flushed once, when nothing more runs now or,
    /// when a job starts, with the job's answers.
    private func startJob(context: ChannelHandlerContext) {
        while !jobRunning, !closing, !pending.isEmpty, context.channel.isWritable {
            let inline = readsOnEventLoop ? inlineCount() : 0
            if inline > 0 {
                inlineOutput.removeAll(keepingCapacity: true)
                let (consumed, quit) = session.run(pending.prefix(inline), into: &inlineOutput, outputBytesMax: limits.batchOutputBytesMax)
                pending.removeFirst(consumed)
                if !inlineOutput.isEmpty {
                    context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: inlineOutput)), promise: nil)
                    unflushed = true
                }
                // Kept for the next batch up to a few pages' worth; an outsized batch's memory
                // goes back (a connection holds at most this much between batches).
                if inlineOutput.capacity > Self.inlineOutputKeptBytesMax { inlineOutput = [] }
                if quit {
                    closing = true
                    context.flush()
                    context.close(promise: nil)
                    return
                }
                cutLines()
                continue
            }
            // The answers written so far go out with the job's (one write for the round).
            startPoolJob(context: context)
            return
        }
        flushIfNeeded(context: context)
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
    }

    /// How many lines at the front of `pending` (at most a batch) may run on the event loop:
    /// reads, which neither take the writer lock nor wait for the log's fdatasync, and with
    /// `writesOnEventLoop` the small writes (which then wait for no fdatasync either).
    private func inlineCount() -> Int {
        var count = 0
        for input in pending {
            guard count < limits.batchLinesMax, Session.runsOnEventLoop(input, writes: writesOnEventLoop) else { break }
            count += 1
        }
        return count
    }

    /// Starts a job on the worker pool for the lines at the front of `pending` (through the
    /// event loop's `PoolJobs`, which sends the jobs its connections start in one round of the
    /// loop to the pool as one work item).
    private func startPoolJob(context: ChannelHandlerContext) {
        let count = min(pending.count, limits.batchLinesMax)
        let batch = Array(pending.prefix(count))
        jobRunning = true
        let job = PoolJobs.Job(session: session, batch: batch, outputBytesMax: limits.batchOutputBytesMax)
        PoolJobs.on(context.eventLoop, pool: pool).submit(job) { result in
            self.jobFinished(context: context, result)
        }
    }

    struct JobResult: Sendable {
        var output: [UInt8]
        var consumed: Int
        var quit: Bool
    }

    private func jobFinished(context: ChannelHandlerContext, _ result: Result<JobResult, Error>) {
        jobRunning = false
        guard case .success(let job) = result else {
            // The pool has stopped: the server is going down.
            closing = true
            context.flush()
            context.close(promise: nil)
            return
        }
        // channelInactive empties `pending` when the client went away during the job.
        pending.removeFirst(min(job.consumed, pending.count))
        if !job.output.isEmpty && context.channel.isActive {
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: job.output)), promise: nil)
            unflushed = true
        }
        if job.quit || closing {
            closing = true
            context.flush()
            context.close(promise: nil)
            return
        }
        cutLines()
        // Reads that follow run here now, and their answers share the flush with this job's.
        startJob(context: context)
        releaseHeldRead(context: context)
        closeIfInputDone(context: context)
    }

    /// After the client's end of input: once every line it sent is answered, close.
    private func closeIfInputDone(context: ChannelHandlerContext) {
        guard inputClosed, !jobRunning, pending.isEmpty, !closing else { return }
        if let rest = input, rest.readableBytes > 0 { return }
        closing = true
        context.close(promise: nil)
    }

    private var mayRead: Bool {
        !closing && pending.count < limits.pendingLinesMax && (input?.readableBytes ?? 0) <= limits.lineBytesMax
    }

    private func releaseHeldRead(context: ChannelHandlerContext) {
        if readHeld && mayRead && context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if mayRead && context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            startJob(context: context)
            releaseHeldRead(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            inputClosed = true
            // A last line without its newline still counts as a line.
            if var rest = input, rest.readableBytes > 0, !discardingLine {
                rest.writeInteger(UInt8(10))
                input = rest
            }
            cutLines()
            startJob(context: context)
            closeIfInputDone(context: context)
            return
        }
        if event is DrainEvent {
            closing = true
            if !jobRunning { context.close(promise: nil) }
            return
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Idle only counts while the connection waits for the client, not for us.
            if !jobRunning && pending.isEmpty {
                closing = true
                var output: [UInt8] = []
                session.append(.error(.invalid, "idle for \(limits.idleSeconds) seconds; closing the connection"), to: &output)
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: output))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        pending.removeAll()
        input = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset by the peer and the like: the connection is over, the server goes on.
        closing = true
        context.close(promise: nil)
    }
}

/// The worker pool's side of one event loop: the jobs its connections start while the loop
/// handles one round of socket events are run by one work item, one after another, and
/// answered together, instead of one pool hop (a worker woken, then the loop woken with the
/// answer) per connection. Under sync `always` every batch goes to the pool (and before the
/// small writes ran on the event loop, in the `dsb` mix every batch with a post did): with 64
/// connections on a loop, the hops' context switches and futex waits were ~15% of the
/// server's CPU. Each connection still has at most one job at a time, so its answers keep their
/// order; jobs of different connections share a worker's turn.
///
/// Thread safety: used only on its event loop (found through a thread-specific slot of that
/// loop's thread, and `on` checks it is called there); the work item carries Sendable jobs to
/// the pool and their results back. `Sendable` only to sit in the thread-specific slot.
final class PoolJobs: @unchecked Sendable {
    struct Job: Sendable {
        let session: Session
        let batch: [Session.Input]
        let outputBytesMax: Int

        func run() -> ConnectionHandler.JobResult {
            var output: [UInt8] = []
            // About one page of tweets per line: the buffer grows once or twice, not a dozen times.
            output.reserveCapacity(min(batch.count * 4096, 64 * 1024))
            let (consumed, quit) = session.run(batch[...], into: &output, outputBytesMax: outputBytesMax)
            return ConnectionHandler.JobResult(output: output, consumed: consumed, quit: quit)
        }
    }

    private let eventLoop: EventLoop
    private let pool: NIOThreadPool
    private var waiting: [Job] = []
    private var finishers: [(Result<ConnectionHandler.JobResult, Error>) -> Void] = []
    /// Jobs one work item runs at most (the rest wait for the next item, which starts at once).
    static let jobsPerItemMax = 32

    private init(eventLoop: EventLoop, pool: NIOThreadPool) {
        self.eventLoop = eventLoop
        self.pool = pool
    }

    private static let slot = ThreadSpecificVariable<PoolJobs>()

    /// The loop's instance for `pool` (made at the loop's first job; a loop serves one server's
    /// pool, but tests run several servers in a process, so a different pool gets a new one).
    static func on(_ eventLoop: EventLoop, pool: NIOThreadPool) -> PoolJobs {
        eventLoop.preconditionInEventLoop()
        if let jobs = slot.currentValue, jobs.pool === pool, jobs.eventLoop === eventLoop { return jobs }
        let jobs = PoolJobs(eventLoop: eventLoop, pool: pool)
        slot.currentValue = jobs
        return jobs
    }

    /// Runs `job` on the pool with the others submitted in this round of the loop; `finished`
    /// is called on the loop with its result.
    func submit(_ job: Job, finished: @escaping (Result<ConnectionHandler.JobResult, Error>) -> Void) {
        waiting.append(job)
        finishers.append(finished)
        // The first job of a round schedules the send; tasks run after the round's socket events.
        if waiting.count == 1 {
            eventLoop.assumeIsolated().execute { self.send() }
        }
    }

    private func send() {
        while !waiting.isEmpty {
            let take = min(waiting.count, Self.jobsPerItemMax)
            let jobs = Array(waiting.prefix(take))
            let done = Array(finishers.prefix(take))
            waiting.removeFirst(take)
            finishers.removeFirst(take)
            pool.runIfActive(eventLoop: eventLoop) { () -> [ConnectionHandler.JobResult] in
                jobs.map { $0.run() }
            }.assumeIsolated().whenComplete { result in
                for (index, finished) in done.enumerated() {
                    finished(result.map { $0[index] })
                }
            }
        }
    }
}
