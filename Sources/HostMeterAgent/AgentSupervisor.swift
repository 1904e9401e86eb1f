public import AgentAPI
import EventThreads
import Foundation
public import Logging
public import ServiceLifecycle
import Shipping
import Synchronization
import UnixSignals
public import RuntimeState

/// Applies a new configuration to the running agent: what can change live does, the rest is
/// reported as needing a restart.
public final class ConfigurationReloader: Sendable {
    let path: String?
    let shipper: ShipperService
    let thresholds: ThresholdRuleBook
    let logSettings: LogSettings?
    let logger: Logger
    private let current: Mutex<AgentConfiguration>

    init(
        path: String?, configuration: AgentConfiguration, shipper: ShipperService, thresholds: ThresholdRuleBook,
        logSettings: LogSettings?, logger: Logger
    ) {
        self.path = path
        self.shipper = shipper
        self.thresholds = thresholds
        self.logSettings = logSettings
        self.logger = logger
        current = Mutex(configuration)
    }

    public var configuration: AgentConfiguration { current.withLock { $0 } }

    /// Reads the file again. A file that does not validate is refused and logged with the reason;
    /// the running configuration stays. Returns whether the new one was applied.
    @discardableResult
    public func reload() -> Bool {
        guard let path else {
            logger.warning("SIGHUP ignored: the agent was not started from a configuration file")
            return false
        }
        let new: AgentConfiguration
        do {
            new = try AgentConfiguration.load(path: path)
        } catch {
            logger.error(
                "configuration reload refused; keeping the running configuration",
                metadata: ["config": "\(path)", "error": "\(error)"])
            return false
        }
        let old = configuration
        var applied: [String] = []
        if new.sink != old.sink {
            do {
                shipper.replaceSink(try Agent.makeSink(new))
                applied.append("sink")
            } catch {
                logger.error(
                    "configuration reload refused: the new sink cannot be built; keeping the running configuration",
                    metadata: ["config": "\(path)", "error": "\(error)"])
                return false
            }
        }
        if new.thresholds != old.thresholds {
            thresholds.setConfiguration(new.thresholds)
            applied.append("thresholds")
        }
        if new.log != old.log, let logSettings {
            logSettings.set(level: Logger.Level(new.log.level), format: LineLogHandler.Format(new.log.format))
            applied.append("log")
        }
        let needRestart = AgentConfiguration.restartOnlyChanges(old, new)
        if !needRestart.isEmpty {
            logger.warning(
                "configuration keys changed that apply only after a restart; their running values are kept",
                metadata: ["keys": "\(needRestart.joined(separator: ","))"])
        }
        current.withLock { running in
            // Keep the running values of what was not applied, so a later reload compares against
            // what actually runs.
            running.sink = new.sink
            running.thresholds = new.thresholds
            running.log = new.log
        }
        logger.notice(
            "configuration reloaded",
            metadata: ["config": "\(path)", "applied": "\(applied.isEmpty ? "nothing changed" : applied.joined(separator: ","))"])
        return true
    }
}

extension Logger.Level {
    init(_ level: AgentConfiguration.LogLevel) {
        self = Logger.Level(rawValue: level.rawValue) ?? .info
    }
}

extension LineLogHandler.Format {
    init(_ format: AgentConfiguration.LogFormat) {
        self = format == .json ? .json : .logfmt
    }
}

/// The agent's conversation with systemd and the operator: READY=1 once the first sample is taken
/// and the API listens, WATCHDOG=1 while samples keep coming, STOPPING=1 on shutdown, and a
/// configuration reload on each SIGHUP. It is the group's last service, so the first to hear of a
/// shutdown.
public struct SupervisorService: Service {
    let notifier: SystemdNotifier
    let apiPort: APIServer.BoundPort
    let state: AgentState
    let reloader: ConfigurationReloader
    let logger: Logger

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await readyThenWatchdog() }
            group.addTask { await reloadOnHangup() }
            // Until shutdown (or cancellation, which throws and skips the message).
            if (try? await gracefulShutdown()) != nil {
                notifier.notify("STOPPING=1\nSTATUS=stopping: storing the last sample and draining the outbox")
                logger.info("shutting down")
            }
            group.cancelAll()
        }
    }

    private func readyThenWatchdog() async {
        guard await apiPort.wait() != nil else { return }
        while state.snapshot.lastSample == nil {
            guard (try? await Task.sleep(for: .milliseconds(50))) != nil else { return }
        }
        let snapshot = state.snapshot
        notifier.notify(
            "READY=1\nSTATUS=metering \(snapshot.hostID) every \(snapshot.intervalSeconds) s; API on port \(apiPort.port ?? 0)")
        logger.info("ready", metadata: ["systemd.notify": "\(notifier.isEnabled)"])
        // Start-up is over: the code only it ran need not stay resident.
        let released = StartupPages.release()
        logger.debug("start-up code pages released", metadata: ["memory.advised_bytes": "\(released)"])
        guard let interval = notifier.watchdogInterval else { return }
        while !Task.isCancelled {
            // Keep-alives only while samples keep coming: a stuck sampler gets the agent restarted.
            if AgentHealth.sampleIsFresh(state.snapshot, now: Date().timeIntervalSince1970) {
                notifier.notify("WATCHDOG=1")
            } else {
                logger.error("no recent sample; withholding the systemd watchdog keep-alive")
            }
            // The shared timer thread: a pending `Task.sleep` would wake the process every second.
            guard (try? await EventThread.timers.sleep(for: interval)) != nil else { return }
        }
    }

    private func reloadOnHangup() async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            logger.notice("SIGHUP: reloading the configuration")
            notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicros())")
            reloader.reload()
            notifier.notify("READY=1")
        }
    }

    static func monotonicMicros() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
