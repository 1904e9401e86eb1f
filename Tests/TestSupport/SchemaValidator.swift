public import Foundation
public import Testing

/// Python's `jsonschema` (draft 2020-12) as a validator independent of the code that writes the
/// events, run with a time limit and its output in files so that it cannot hang the tests on a
/// pipe. Needs python3 with jsonschema (scripts/deps.sh --test).
public enum SchemaValidator {
    /// The script's exit status when jsonschema cannot be imported.
    static let missingJSONSchema: Int32 = 3

    /// Validates each element of the JSON array `instances` against the schema at `schema`;
    /// returns, per element, the validator's error messages (none when it is valid). Throws when
    /// the validator cannot run or the schema itself is not a valid draft 2020-12 schema.
    public static func validate(_ instances: Data, schema: URL) throws -> [[String]] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hostmeter-schema-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("validate_schema.py")
        let input = directory.appendingPathComponent("instances.json")
        try Data(validatorScript.utf8).write(to: script)
        try instances.write(to: input)

        let result = try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, schema.path, input.path])
        guard result.status != missingJSONSchema else {
            throw TestSupportError("Python's jsonschema is not importable: run scripts/deps.sh --test (\(result.stderr))")
        }
        guard result.status == 0 else { throw TestSupportError("the validator failed (\(result.status)): \(result.stderr)") }
        guard let verdicts = try JSONSerialization.jsonObject(with: result.stdout) as? [[String]] else {
            throw TestSupportError("validator output: \(String(decoding: result.stdout, as: UTF8.self))")
        }
        return verdicts
    }

    /// A change to a valid instance, on its JSON object.
    public typealias Change = @Sendable (inout [String: Any]) -> Void

    /// Validates, in one run of the validator, `base` unchanged and with each change of
    /// `stillValid` and of `wrong` applied: expects the first two kinds accepted and each of
    /// `wrong` rejected, naming the case that is not.
    public static func expectVerdicts(
        base: [String: Any], stillValid: [(String, Change)], wrong: [(String, Change)], schema: URL,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let cases: [(String, Change)] = [("unchanged", { @Sendable _ in })] + stillValid + wrong
        let instances: [[String: Any]] = cases.map { _, change in
            var instance = base
            change(&instance)
            return instance
        }
        let verdicts = try validate(try JSONSerialization.data(withJSONObject: instances), schema: schema)
        try #require(verdicts.count == cases.count, sourceLocation: sourceLocation)
        for (index, (what, _)) in cases.enumerated() {
            if index <= stillValid.count {
                #expect(verdicts[index].isEmpty, "\(what): rejected: \(verdicts[index])", sourceLocation: sourceLocation)
            } else {
                #expect(!verdicts[index].isEmpty, "\(what): accepted, but the schema must reject it", sourceLocation: sourceLocation)
            }
        }
    }

    /// argv: schema path, instances path (a JSON array). Prints a JSON array with one list of error
    /// messages per instance. Exit 3 without jsonschema, 2 when the schema itself is invalid.
    static let validatorScript = #"""
        import json, sys
        try:
            import jsonschema
        except ImportError as error:
            print(f"cannot import jsonschema: {error}; run scripts/deps.sh --test", file=sys.stderr)
            sys.exit(3)

        with open(sys.argv[1]) as f:
            schema = json.load(f)
        with open(sys.argv[2]) as f:
            instances = json.load(f)

        Validator = jsonschema.Draft202012Validator
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            print(f"the schema is not draft 2020-12: {schema.get('$schema')!r}", file=sys.stderr)
            sys.exit(2)
        try:
            Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as error:
            print(f"invalid schema: {error}", file=sys.stderr)
            sys.exit(2)
        validator = Validator(schema, format_checker=Validator.FORMAT_CHECKER)
        verdicts = []
        for instance in instances:
            errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
            verdicts.append([f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors])
        json.dump(verdicts, sys.stdout)
        """#
}
