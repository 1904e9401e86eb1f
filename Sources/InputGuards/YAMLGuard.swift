// This file is over 400 lines on purpose: it is one scanner that follows libyaml's token states
// (quoted, plain and block scalars, comments, tags, flow collections) in one place, so that a
// reader can check it against libyaml's scanner.c state by state; split, the states would be read
// apart from the transitions between them.

/// Why a YAML file was refused before it was parsed: too large, nested too deeply, or using an
/// anchor or alias. `line` and `column` count from 1.
public struct YAMLGuardError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(line: Int?, column: Int? = nil, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// Checks YAML text from a file before Yams parses it: its size, its nesting depth, and that it
/// has no anchors (`&name`) or aliases (`*name`).
///
/// Yams' composer hashes an alias used as a mapping key by walking its whole expansion, so a few
/// nested anchors of a few hundred bytes keep it busy for minutes, and it cannot be interrupted.
/// Nothing the agent reads needs anchors, so they are refused here, before composing, by a scan
/// that is linear in the input. The scan follows libyaml's scanner (the C code inside Yams) token
/// by token: it knows quoted, plain and block scalars, comments, tags and flow collections, so a
/// `*` inside a scalar (`loop*`, `'*x'`, `a *b`) is text, as libyaml reads it. Where it cannot
/// follow the text (YAML that libyaml refuses too), any later `*` or `&` is refused, so a gap in
/// the scan never lets an alias through. Deep nesting is refused too: Yams composes and decodes
/// recursively, and 30,000 nested `[` would overflow a thread's stack.
public enum YAMLGuard {
    /// The largest configuration or tokens file read: both are a few kilobytes.
    public static let defaultMaxBytes = 1 << 20
    /// Collections nested deeper than this are refused; the agent's files nest 5 levels at most.
    public static let maxDepth = 64

    /// Throws if `text` is larger than `maxBytes` (UTF-8), nests deeper than `maxDepth`, or has an
    /// anchor or alias.
    public static func check(_ text: String, maxBytes: Int = defaultMaxBytes) throws(YAMLGuardError) {
        let count = text.utf8.count
        guard count <= maxBytes else {
            throw YAMLGuardError(line: nil, message: "\(count) bytes is more than the \(maxBytes) bytes allowed")
        }
        var scanner = YAMLTokenScanner(Array(text.utf8))
        if let finding = scanner.run() {
            throw finding
        }
    }

    /// `check`, with the error turned into the caller's own (the file's name added, say).
    public static func check<Failure: Error>(
        _ text: String, maxBytes: Int = defaultMaxBytes, orThrow makeError: (YAMLGuardError) -> Failure
    ) throws(Failure) {
        do {
            try check(text, maxBytes: maxBytes)
        } catch {
            throw makeError(error)
        }
    }
}

/// A port of the token-level decisions of libyaml's scanner (scanner.c of libyaml 0.2.5, as Yams
/// 6 vendors it): where tokens start, the flow level, the block indentation stack and simple keys,
/// and how far each scalar reaches. It builds no tokens; it stops at the first anchor or alias.
///
/// Columns count characters and lookahead counts bytes, as libyaml's do (lookahead is only taken
/// after an ASCII indicator, where the two agree).
struct YAMLTokenScanner {
    private struct SimpleKey {
        var possible = false
        var required = false
        var characterIndex = 0
        var line = 0
        var column = 0
    }

    /// libyaml would stop here with a scanner error.
    private struct Refusal: Error {
        var reason: String
    }

    private let bytes: [UInt8]
    private var index = 0
    private var characterIndex = 0
    private var line = 0
    private var column = 0
    private var flowLevel = 0
    private var indent = -1
    private var indents: [Int] = []
    private var simpleKeyAllowed = true
    private var simpleKeys = [SimpleKey()]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The first anchor or alias, or the nesting that is too deep; nil when there is none.
    mutating func run() -> YAMLGuardError? {
        do {
            return try scan()
        } catch {
            return afterSyntaxError(error.reason)
        }
    }

    // MARK: Tokens (yaml_parser_fetch_next_token)

    private mutating func scan() throws(Refusal) -> YAMLGuardError? {
        while true {
            try scanToNextToken()
            try staleSimpleKeys()
            unrollIndent(column)
            guard index < bytes.count else { return nil }  // stream end
            let byte = bytes[index]
            if column == 0 && byte == .percent {
                unrollIndent(-1)
                try removeSimpleKey()
                simpleKeyAllowed = false
                try scanDirective()
            } else if column == 0 && isDocumentIndicator(index) {
                unrollIndent(-1)
                try removeSimpleKey()
                simpleKeyAllowed = false
                skip()
                skip()
                skip()
            } else if byte == .openBracket || byte == .openBrace {
                try saveSimpleKey()
                flowLevel += 1
                simpleKeys.append(SimpleKey())
                if let tooDeep = checkDepth() { return tooDeep }
                simpleKeyAllowed = true
                skip()
            } else if byte == .closeBracket || byte == .closeBrace {
                try removeSimpleKey()
                if flowLevel > 0 {
                    flowLevel -= 1
                    simpleKeys.removeLast()
                }
                simpleKeyAllowed = false
                skip()
            } else if byte == .comma {
                try removeSimpleKey()
                simpleKeyAllowed = true
                skip()
            } else if byte == .dash && isBlankOrEnd(index + 1) {
                if flowLevel == 0 {
                    guard simpleKeyAllowed else { throw Refusal(reason: "block sequence entries are not allowed in this context") }
                    if let tooDeep = rollIndent(column) { return tooDeep }
                }
                try removeSimpleKey()
                simpleKeyAllowed = true
                skip()
            } else if byte == .question && (flowLevel > 0 || isBlankOrEnd(index + 1)) {
                if flowLevel == 0 {
                    guard simpleKeyAllowed else { throw Refusal(reason: "mapping keys are not allowed in this context") }
                    if let tooDeep = rollIndent(column) { return tooDeep }
                }
                try removeSimpleKey()
                simpleKeyAllowed = flowLevel == 0
                skip()
            } else if byte == .colon && (flowLevel > 0 || isBlankOrEnd(index + 1)) {
                if simpleKeys[simpleKeys.count - 1].possible {
                    if let tooDeep = rollIndent(simpleKeys[simpleKeys.count - 1].column) { return tooDeep }
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = false
                } else {
                    if flowLevel == 0 {
                        guard simpleKeyAllowed else { throw Refusal(reason: "mapping values are not allowed in this context") }
                        if let tooDeep = rollIndent(column) { return tooDeep }
                    }
                    simpleKeyAllowed = flowLevel == 0
                }
                skip()
            } else if byte == .asterisk || byte == .ampersand {
                return YAMLGuardError(
                    line: line + 1, column: column + 1,
                    message: "\(byte == .asterisk ? "an alias" : "an anchor") (\(token(at: index))) at column \(column + 1): "
                        + "YAML anchors and aliases are not allowed; write the value out in full")
            } else if byte == .exclamation {
                try saveSimpleKey()
                simpleKeyAllowed = false
                try scanTag()
            } else if (byte == .pipe || byte == .greaterThan) && flowLevel == 0 {
                try removeSimpleKey()
                simpleKeyAllowed = true
                try scanBlockScalar()
            } else if byte == .singleQuote || byte == .doubleQuote {
                try saveSimpleKey()
                simpleKeyAllowed = false
                try scanQuotedScalar(single: byte == .singleQuote)
            } else if startsPlainScalar(byte) {
                try saveSimpleKey()
                simpleKeyAllowed = false
                try scanPlainScalar()
            } else {
                throw Refusal(reason: "found a character that cannot start any token")
            }
        }
    }

    /// A token that libyaml refuses ends its scan, and so the events Yams composes. Anything
    /// after it is never composed, but this port cannot prove that it stopped where libyaml
    /// stops, so it accepts only when no `*` or `&` follows.
    private func afterSyntaxError(_ reason: String) -> YAMLGuardError? {
        let errorLine = line + 1
        var lineNumber = line + 1
        var position = index
        while position < bytes.count {
            let byte = bytes[position]
            if byte == .asterisk || byte == .ampersand {
                return YAMLGuardError(
                    line: lineNumber,
                    message: "'\(Character(Unicode.Scalar(byte)))' after the YAML error at line \(errorLine) (\(reason)) "
                        + "may be an alias or anchor, and YAML anchors and aliases are not allowed")
            }
            if byte == .lineFeed || (byte == .carriageReturn && (position + 1 >= bytes.count || bytes[position + 1] != .lineFeed)) {
                lineNumber += 1
            }
            position += 1
        }
        return nil
    }

    /// The indicator and the name after it, as libyaml reads a name (at most 40 characters shown).
    private func token(at start: Int) -> String {
        var end = start + 1
        while end < bytes.count, end - start <= 40, isAlphanumeric(bytes[end]) { end += 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    private func checkDepth() -> YAMLGuardError? {
        guard flowLevel + indents.count > YAMLGuard.maxDepth else { return nil }
        return YAMLGuardError(
            line: line + 1, column: column + 1,
            message: "collections nested more than \(YAMLGuard.maxDepth) levels deep are not allowed")
    }

    // MARK: Whitespace, comments, simple keys, indentation

    /// yaml_parser_scan_to_next_token.
    private mutating func scanToNextToken() throws(Refusal) {
        while true {
            if column == 0 && isByteOrderMark(index) { skip() }
            while index < bytes.count,
                bytes[index] == .space || ((flowLevel > 0 || !simpleKeyAllowed) && bytes[index] == .tab)
            {
                skip()
            }
            if index < bytes.count && bytes[index] == .hash {
                while !isBreakOrEnd(index) { skip() }
            }
            guard isBreak(index) else { return }
            skipLine()
            if flowLevel == 0 { simpleKeyAllowed = true }
        }
    }

    /// A possible simple key stops being possible on the next line or 1024 characters on.
    private mutating func staleSimpleKeys() throws(Refusal) {
        for level in simpleKeys.indices {
            let key = simpleKeys[level]
            if key.possible && (key.line < line || key.characterIndex + 1024 < characterIndex) {
                if key.required { throw Refusal(reason: "could not find expected ':'") }
                simpleKeys[level].possible = false
            }
        }
    }

    private mutating func saveSimpleKey() throws(Refusal) {
        let required = flowLevel == 0 && indent == column
        guard simpleKeyAllowed else { return }
        try removeSimpleKey()
        simpleKeys[simpleKeys.count - 1] = SimpleKey(
            possible: true, required: required, characterIndex: characterIndex, line: line, column: column)
    }

    private mutating func removeSimpleKey() throws(Refusal) {
        let last = simpleKeys.count - 1
        if simpleKeys[last].possible && simpleKeys[last].required {
            throw Refusal(reason: "could not find expected ':'")
        }
        simpleKeys[last].possible = false
    }

    private mutating func rollIndent(_ newIndent: Int) -> YAMLGuardError? {
        guard flowLevel == 0, indent < newIndent else { return nil }
        indents.append(indent)
        indent = newIndent
        return checkDepth()
    }

    private mutating func unrollIndent(_ newIndent: Int) {
        guard flowLevel == 0 else { return }
        while indent > newIndent, let outer = indents.popLast() { indent = outer }
    }

    // MARK: Scalars and tags

    /// yaml_parser_scan_directive: `%YAML 1.2` or `%TAG !handle! prefix`, then an optional
    /// comment and the line's end; libyaml refuses any other directive.
    private mutating func scanDirective() throws(Refusal) {
        skip()
        var name: [UInt8] = []
        while isAlphanumeric(byte(index)) {
            name.append(byte(index))
            skip()
        }
        guard !name.isEmpty, isBlankOrEnd(index) else {
            throw Refusal(reason: "could not find expected directive name")
        }
        while isBlank(index) { skip() }
        if name == Array("YAML".utf8) {
            try scanVersionNumber()
            guard byte(index) == .period else { throw Refusal(reason: "did not find expected digit or '.' character") }
            skip()
            try scanVersionNumber()
        } else if name == Array("TAG".utf8) {
            guard byte(index) == .exclamation else { throw Refusal(reason: "did not find expected '!'") }
            skip()
            var handleLength = 1
            while isAlphanumeric(byte(index)) {
                skip()
                handleLength += 1
            }
            if byte(index) == .exclamation {
                skip()
            } else if handleLength > 1 {
                throw Refusal(reason: "did not find expected '!'")
            }
            guard isBlank(index) else { throw Refusal(reason: "did not find expected whitespace") }
            while isBlank(index) { skip() }
            guard scanTagURI(verbatim: true) > 0 else { throw Refusal(reason: "did not find expected tag URI") }
            guard isBlankOrEnd(index) else { throw Refusal(reason: "did not find expected whitespace or line break") }
        } else {
            throw Refusal(reason: "found unknown directive name")
        }
        while isBlank(index) { skip() }
        if byte(index) == .hash {
            while !isBreakOrEnd(index) { skip() }
        }
        guard isBreakOrEnd(index) else { throw Refusal(reason: "did not find expected comment or line break") }
        skipLine()
    }

    private mutating func scanVersionNumber() throws(Refusal) {
        var digits = 0
        while isDigit(byte(index)) {
            digits += 1
            guard digits <= 9 else { throw Refusal(reason: "found extremely long version number") }
            skip()
        }
        guard digits > 0 else { throw Refusal(reason: "did not find expected version number") }
    }

    /// yaml_parser_scan_tag: `!<uri>`, `!handle!suffix`, `!suffix` or `!`.
    private mutating func scanTag() throws(Refusal) {
        if byte(index + 1) == .lessThan {
            skip()
            skip()
            scanTagURI(verbatim: true)
            guard byte(index) == .greaterThan else { throw Refusal(reason: "did not find the expected '>'") }
            skip()
        } else {
            skip()
            while isAlphanumeric(byte(index)) { skip() }
            if byte(index) == .exclamation {
                skip()
                // A named handle (`!!`, `!e!`) needs a suffix; `!` alone or `!name` does not.
                guard scanTagURI(verbatim: false) > 0 else { throw Refusal(reason: "did not find expected tag URI") }
            } else {
                scanTagURI(verbatim: false)
            }
        }
        if !isBlankOrEnd(index) && !(flowLevel > 0 && byte(index) == .comma) {
            throw Refusal(reason: "did not find expected whitespace or line break after a tag")
        }
    }

    /// Consumes URI characters; returns how many.
    @discardableResult
    private mutating func scanTagURI(verbatim: Bool) -> Int {
        var length = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard isAlphanumeric(byte) || Self.uriPunctuation.contains(byte)
                || (verbatim && (byte == .comma || byte == .openBracket || byte == .closeBracket))
            else { break }
            if byte == .percent {
                // An escape is three characters; libyaml refuses a malformed one, which only
                // stops it earlier than this scan.
                skip()
                if isHexDigit(self.byte(index)) { skip() }
                if isHexDigit(self.byte(index)) { skip() }
            } else {
                skip()
            }
            length += 1
        }
        return length
    }

    private static let uriPunctuation: Set<UInt8> = Set(";/?:@&=+$.%!~*'()".utf8)

    /// yaml_parser_scan_flow_scalar: up to the closing quote, across lines. Escapes never hide a
    /// closing quote except `\"` and `''`, so every other escape is two characters here.
    private mutating func scanQuotedScalar(single: Bool) throws(Refusal) {
        let quote: UInt8 = single ? .singleQuote : .doubleQuote
        skip()
        while true {
            if column == 0 && isDocumentIndicator(index) {
                throw Refusal(reason: "found unexpected document indicator in a quoted scalar")
            }
            guard !isEnd(index) else { throw Refusal(reason: "found unexpected end of stream in a quoted scalar") }
            while !isBlankOrEnd(index) {
                let byte = bytes[index]
                if single && byte == .singleQuote && self.byte(index + 1) == .singleQuote {
                    skip()
                    skip()
                } else if byte == quote {
                    break
                } else if !single && byte == .backslash && isBreak(index + 1) {
                    skip()
                    skipLine()
                    break
                } else if !single && byte == .backslash {
                    skip()
                    if index < bytes.count { skip() }
                } else {
                    skip()
                }
            }
            if byte(index) == quote { break }
            while isBlank(index) || isBreak(index) {
                if isBlank(index) { skip() } else { skipLine() }
            }
        }
        skip()
    }

    /// yaml_parser_scan_plain_scalar: to `: `, ` #`, a flow indicator inside a flow collection,
    /// or a line indented no more than the enclosing block collection.
    private mutating func scanPlainScalar() throws(Refusal) {
        let minimumIndent = indent + 1
        var leadingBlanks = false
        while true {
            if column == 0 && isDocumentIndicator(index) { break }
            if byte(index) == .hash { break }
            while !isBlankOrEnd(index) {
                let byte = bytes[index]
                if flowLevel > 0 && byte == .colon && (isFlowIndicator(self.byte(index + 1)) || self.byte(index + 1) == .question) {
                    throw Refusal(reason: "found unexpected ':' in a plain scalar")
                }
                if (byte == .colon && isBlankOrEnd(index + 1)) || (flowLevel > 0 && isFlowIndicator(byte)) { break }
                leadingBlanks = false
                skip()
            }
            guard isBlank(index) || isBreak(index) else { break }
            while isBlank(index) || isBreak(index) {
                if isBlank(index) {
                    if leadingBlanks && column < minimumIndent && bytes[index] == .tab {
                        throw Refusal(reason: "found a tab character that violates indentation")
                    }
                    skip()
                } else {
                    skipLine()
                    leadingBlanks = true
                }
            }
            if flowLevel == 0 && column < minimumIndent { break }
        }
        if leadingBlanks { simpleKeyAllowed = true }
    }

    /// yaml_parser_scan_block_scalar: the header, then every line indented at least as far as the
    /// content's indentation (explicit, or found from the first non-empty line and the blank
    /// lines before it, and at least one more than the enclosing collection's).
    private mutating func scanBlockScalar() throws(Refusal) {
        skip()
        var increment = 0
        if byte(index) == .plus || byte(index) == .dash {
            skip()
            if isDigit(byte(index)) {
                guard byte(index) != .digitZero else { throw Refusal(reason: "found an indentation indicator equal to 0") }
                increment = Int(byte(index) - .digitZero)
                skip()
            }
        } else if isDigit(byte(index)) {
            guard byte(index) != .digitZero else { throw Refusal(reason: "found an indentation indicator equal to 0") }
            increment = Int(byte(index) - .digitZero)
            skip()
            if byte(index) == .plus || byte(index) == .dash { skip() }
        }
        while isBlank(index) { skip() }
        if byte(index) == .hash {
            while !isBreakOrEnd(index) { skip() }
        }
        guard isBreakOrEnd(index) else { throw Refusal(reason: "did not find expected comment or line break") }
        if isBreak(index) { skipLine() }
        var blockIndent = increment > 0 ? (indent >= 0 ? indent + increment : increment) : 0
        try scanBlockScalarBreaks(&blockIndent)
        while column == blockIndent && !isEnd(index) {
            while !isBreakOrEnd(index) { skip() }
            if isBreak(index) { skipLine() }
            try scanBlockScalarBreaks(&blockIndent)
        }
    }

    private mutating func scanBlockScalarBreaks(_ blockIndent: inout Int) throws(Refusal) {
        var maxIndent = 0
        while true {
            while (blockIndent == 0 || column < blockIndent) && byte(index) == .space { skip() }
            maxIndent = max(maxIndent, column)
            if (blockIndent == 0 || column < blockIndent) && byte(index) == .tab {
                throw Refusal(reason: "found a tab character where an indentation space is expected")
            }
            guard isBreak(index) else { break }
            skipLine()
        }
        if blockIndent == 0 {
            blockIndent = max(maxIndent, indent + 1, 1)
        }
    }

    // MARK: Characters

    private func byte(_ position: Int) -> UInt8 { position < bytes.count ? bytes[position] : 0 }

    /// One character on (a UTF-8 sequence; a stray byte counts as one, where libyaml's reader
    /// would already have stopped).
    private mutating func skip() {
        guard index < bytes.count else { return }
        index += Self.width(bytes[index])
        characterIndex += 1
        column += 1
    }

    /// Past a line break: CR LF, CR, LF, NEL, LS or PS.
    private mutating func skipLine() {
        guard isBreak(index) else { return }
        if bytes[index] == .carriageReturn && byte(index + 1) == .lineFeed {
            index += 2
            characterIndex += 2
        } else {
            index += Self.width(bytes[index])
            characterIndex += 1
        }
        column = 0
        line += 1
    }

    private static func width(_ lead: UInt8) -> Int {
        switch lead {
        case 0xC0...0xDF: 2
        case 0xE0...0xEF: 3
        case 0xF0...0xF7: 4
        default: 1
        }
    }

    private func isBreak(_ position: Int) -> Bool {
        switch byte(position) {
        case .lineFeed, .carriageReturn: true
        case 0xC2: byte(position + 1) == 0x85
        case 0xE2: byte(position + 1) == 0x80 && (byte(position + 2) == 0xA8 || byte(position + 2) == 0xA9)
        default: false
        }
    }

    private func isBlank(_ position: Int) -> Bool { byte(position) == .space || byte(position) == .tab }

    /// libyaml's IS_Z: the end of the text, or a NUL (where libyaml's reader stops anyway).
    private func isEnd(_ position: Int) -> Bool { position >= bytes.count || bytes[position] == 0 }

    /// libyaml's IS_BREAKZ.
    private func isBreakOrEnd(_ position: Int) -> Bool { isEnd(position) || isBreak(position) }

    /// libyaml's IS_BLANKZ.
    private func isBlankOrEnd(_ position: Int) -> Bool { isBlank(position) || isBreakOrEnd(position) }

    private func isByteOrderMark(_ position: Int) -> Bool {
        byte(position) == 0xEF && byte(position + 1) == 0xBB && byte(position + 2) == 0xBF
    }

    private func isDocumentIndicator(_ position: Int) -> Bool {
        let first = byte(position)
        guard first == .dash || first == .period else { return false }
        return byte(position + 1) == first && byte(position + 2) == first && isBlankOrEnd(position + 3)
    }

    private func isFlowIndicator(_ byte: UInt8) -> Bool {
        byte == .comma || byte == .openBracket || byte == .closeBracket || byte == .openBrace || byte == .closeBrace
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= .digitZero && byte <= .digitZero + 9 }

    private func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }

    /// libyaml's IS_ALPHA: letters, digits, `_` and `-`.
    private func isAlphanumeric(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == .underscore || byte == .dash
    }

    /// What may start a plain scalar: anything but blanks and indicators; `-` before a non-blank;
    /// `?` and `:` before a non-blank outside flow collections.
    private func startsPlainScalar(_ byte: UInt8) -> Bool {
        if byte == .dash { return !isBlank(index + 1) }
        if byte == .question || byte == .colon { return flowLevel == 0 && !isBlankOrEnd(index + 1) }
        if isBlankOrEnd(index) || byte == 0 { return false }
        return !Self.indicators.contains(byte)
    }

    private static let indicators: Set<UInt8> = Set(",[]{}#&*!|>'\"%@`".utf8)
}

extension UInt8 {
    fileprivate static let tab = UInt8(ascii: "\t")
    fileprivate static let lineFeed = UInt8(ascii: "\n")
    fileprivate static let carriageReturn = UInt8(ascii: "\r")
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let exclamation = UInt8(ascii: "!")
    fileprivate static let doubleQuote = UInt8(ascii: "\"")
    fileprivate static let hash = UInt8(ascii: "#")
    fileprivate static let percent = UInt8(ascii: "%")
    fileprivate static let ampersand = UInt8(ascii: "&")
    fileprivate static let singleQuote = UInt8(ascii: "'")
    fileprivate static let asterisk = UInt8(ascii: "*")
    fileprivate static let plus = UInt8(ascii: "+")
    fileprivate static let comma = UInt8(ascii: ",")
    fileprivate static let dash = UInt8(ascii: "-")
    fileprivate static let period = UInt8(ascii: ".")
    fileprivate static let digitZero = UInt8(ascii: "0")
    fileprivate static let colon = UInt8(ascii: ":")
    fileprivate static let lessThan = UInt8(ascii: "<")
    fileprivate static let greaterThan = UInt8(ascii: ">")
    fileprivate static let question = UInt8(ascii: "?")
    fileprivate static let openBracket = UInt8(ascii: "[")
    fileprivate static let backslash = UInt8(ascii: "\\")
    fileprivate static let closeBracket = UInt8(ascii: "]")
    fileprivate static let underscore = UInt8(ascii: "_")
    fileprivate static let openBrace = UInt8(ascii: "{")
    fileprivate static let pipe = UInt8(ascii: "|")
    fileprivate static let closeBrace = UInt8(ascii: "}")
}
