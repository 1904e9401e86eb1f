import InputGuards
internal import CYaml

/// `yaml_guard`: `YAMLGuard` against libyaml's own scanner, the C code Yams composes from.
///
/// libyaml's tokens up to its first error are what Yams' composer can ever see, so an anchor or
/// alias token among them must be refused (anything else is the hang of issue 16 waiting to
/// happen). When libyaml scans the whole text without an error, the guard must also refuse exactly
/// where libyaml finds the first one, and accept when it finds none: a refusal anywhere else is a
/// valid file turned away. The second check leaves out the cases where the guard refuses on
/// purpose without a token: nesting past `YAMLGuard.maxDepth`, and text after a YAML error.
enum YAMLGuardFuzzTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "yaml_guard") { bytes in
            let yaml = text(bytes)
            let scanned = libyamlScan(Array(yaml.utf8))
            var refusal: YAMLGuardError?
            do throws(YAMLGuardError) {
                try YAMLGuard.check(yaml, maxBytes: 1 << 20)
            } catch {
                refusal = error
                check(!error.message.isEmpty, "a refusal without a message")
            }
            if let found = scanned.firstAnchorOrAlias {
                check(
                    refusal != nil,
                    "libyaml finds an anchor or alias at line \(found.line), column \(found.column) in "
                        + "\(String(reflecting: yaml)), and the guard accepted it")
            }
            guard scanned.reachedEnd, let refusal, let column = refusal.column,
                !refusal.message.contains("nested")
            else { return }
            let found = scanned.firstAnchorOrAlias
            check(
                found.map { $0.line == refusal.line && $0.column == column } ?? false,
                "the guard refused \(String(reflecting: yaml)) with \(refusal), libyaml finds "
                    + (found.map { "the first at line \($0.line), column \($0.column)" } ?? "none"))
        }
    ]

    /// libyaml's tokens: the first anchor or alias (1-based line and column), and whether the scan
    /// reached the end of the stream without an error.
    static func libyamlScan(_ bytes: [UInt8]) -> (firstAnchorOrAlias: (line: Int, column: Int)?, reachedEnd: Bool) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { fatalError("yaml_parser_initialize failed") }
        defer { yaml_parser_delete(&parser) }
        // As Yams sets it for a String.
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        // libyaml asserts a non-null input even when it is empty.
        let input = bytes.isEmpty ? [0] : bytes
        return input.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, bytes.count)
            var first: (line: Int, column: Int)?
            while true {
                var token = yaml_token_t()
                guard yaml_parser_scan(&parser, &token) == 1 else { return (first, false) }
                defer { yaml_token_delete(&token) }
                switch token.type {
                case YAML_ALIAS_TOKEN, YAML_ANCHOR_TOKEN:
                    if first == nil { first = (Int(token.start_mark.line) + 1, Int(token.start_mark.column) + 1) }
                case YAML_STREAM_END_TOKEN, YAML_NO_TOKEN:
                    return (first, true)
                default:
                    continue
                }
            }
        }
    }
}
