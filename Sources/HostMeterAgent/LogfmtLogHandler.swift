import Foundation
public import Logging
import Shipping
import Synchronization

/// The level and format every `LineLogHandler` of the process follows, so a SIGHUP can change them
/// for loggers already handed out; and the count of lines that could not be written.
public final class LogSettings: Sendable {
    private let state: Mutex<(level: Logger.Level, format: LineLogHandler.Format)>
    private let dropped = Mutex<(count: Int, observer: (@Sendable (Int) -> Void)?)>((0, nil))

    public init(level: Logger.Level, format: LineLogHandler.Format) {
        state = Mutex((level, format))
    }

    public var level: Logger.Level { state.withLock { $0.level } }
    public var format: LineLogHandler.Format { state.withLock { $0.format } }

    public func set(level: Logger.Level, format: LineLogHandler.Format) {
        state.withLock { $0 = (level, format) }
    }

    /// Log lines that could not be written to stderr since the start.
    public var droppedLines: Int { dropped.withLock { $0.count } }

    /// Calls `observer` with the lines dropped so far (when any), then with 1 for each further one:
    /// the agent's metrics are built after logging starts.
    public func observeDroppedLines(_ observer: @escaping @Sendable (Int) -> Void) {
        let backlog = dropped.withLock {
            $0.observer = observer
            return $0.count
        }
        if backlog > 0 { observer(backlog) }
    }

    func lineDropped() {
        let observer = dropped.withLock {
            $0.count += 1
            return $0.observer
        }
        observer?(1)
    }
}

/// Writes one line per log record to stderr, as logfmt (`ts=… level=info msg="…" key=value`) or as
/// a JSON object: what journald stores and what Loki and friends parse. A line that cannot be
/// written (stderr's reader went away: EPIPE) is dropped and counted; the agent runs on.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable { case logfmt, json }

    /// The shared level, unless this logger was given its own.
    public var logLevel: Logger.Level {
        get { ownLevel ?? settings.level }
        set { ownLevel = newValue }
    }
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let settings: LogSettings
    private var ownLevel: Logger.Level?

    public init(label: String, settings: LogSettings) {
        self.label = label
        self.settings = settings
    }

    public init(label: String, level: Logger.Level, format: Format) {
        self.init(label: label, settings: LogSettings(level: level, format: format))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        // UTC with its zone, e.g. 2026-11-21T13:53:07.616Z.
        let time = Date().formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var line: String
        switch settings.format {
        case .logfmt:
            line = "ts=\(time) level=\(event.level.rawValue) msg=\(Self.logfmtValue(event.message.description))"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
                line += " \(key)=\(Self.logfmtValue(value.description))"
            }
        case .json:
            var object: [String: String] = ["ts": time, "level": event.level.rawValue, "msg": event.message.description]
            for (key, value) in fields { object[key] = value.description }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        if !DescriptorWriter.write(line + "\n", to: 2) { settings.lineDropped() }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
