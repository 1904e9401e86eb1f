/// A coding key named by any string: for the decoders that read an object's fields one by one, so
/// that each error can name the field, and that refuse the fields they do not know.
public struct FieldKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }

    public init(_ string: String) { stringValue = string }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}
