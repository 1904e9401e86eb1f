import Foundation
public import Logging
import Synchronization

/// The level and format every `LineLogHandler` of the process follows, so a SIGHUP can change them
/// for loggers already handed out.
public final class LogSettings: Sendable {
    private let state: Mutex<(level: Logger.Level, format: LineLogHandler.Format)>

    public init(level: Logger.Level, format: LineLogHandler.Format) {
        state = Mutex((level, format))
    }

    public var level: Logger.Level { state.withLock { $0.level } }
    public var format: LineLogHandler.Format { state.withLock { $0.format } }

    public func set(level: Logger.Level, format: LineLogHandler.Format) {
        state.withLock { $0 = (level, format) }
    }
}

/// Writes one line per log record to stderr, as logfmt (`ts=… level=info msg="…" key=value`) or as
/// a JSON object: what journald stores and what Loki and friends parse.
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
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
