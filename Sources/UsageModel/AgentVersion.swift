/// The agent's release version; `hostmeter version` prints it and packaging reads it.
public enum AgentVersion {
    public static let current = "0.1.0"
}
